/*
 * abi_check.c - print the x86_64 layout of the HAMMER structures of
 * hammer_abi.h and the ioctl request numbers, one "name value" line each:
 *
 *	sizeof.<struct> <n>
 *	alignof.<struct> <n>
 *	offsetof.<struct>.<field> <n>
 *	<CONSTANT> <value>		(ioctl numbers in hex, 0x-prefixed)
 *
 * The output is checked in as tests/fixtures/abi.txt and compared by the
 * unit tests of src/ioctl/kernel.rs. Regenerate with scripts/hammer-abi/regen.sh.
 */
#include <stdalign.h>
#include <stdio.h>

#include "hammer_abi.h"

#define USIZE(t)	printf("sizeof.%s %zu\nalignof.%s %zu\n", #t, \
			    sizeof(union t), #t, (size_t)alignof(union t))
#define SSIZE(t)	printf("sizeof.%s %zu\nalignof.%s %zu\n", #t, \
			    sizeof(struct t), #t, (size_t)alignof(struct t))
#define OFF(t, f)	printf("offsetof.%s.%s %zu\n", #t, #f, \
			    offsetof(struct t, f))
#define IOC(name)	printf("%s 0x%08lx\n", #name, (unsigned long)(name))
#define CONST(name)	printf("%s %lu\n", #name, (unsigned long)(name))
#define HEX(name)	printf("%s 0x%08lx\n", #name, (unsigned long)(name))

int
main(void)
{
	SSIZE(uuid);
	OFF(uuid, time_low);
	OFF(uuid, time_mid);
	OFF(uuid, time_hi_and_version);
	OFF(uuid, clock_seq_hi_and_reserved);
	OFF(uuid, clock_seq_low);
	OFF(uuid, node);

	SSIZE(hammer_base_elm);
	OFF(hammer_base_elm, obj_id);
	OFF(hammer_base_elm, key);
	OFF(hammer_base_elm, create_tid);
	OFF(hammer_base_elm, delete_tid);
	OFF(hammer_base_elm, rec_type);
	OFF(hammer_base_elm, obj_type);
	OFF(hammer_base_elm, btype);
	OFF(hammer_base_elm, localization);

	SSIZE(hammer_btree_leaf_elm);
	OFF(hammer_btree_leaf_elm, base);
	OFF(hammer_btree_leaf_elm, create_ts);
	OFF(hammer_btree_leaf_elm, delete_ts);
	OFF(hammer_btree_leaf_elm, data_offset);
	OFF(hammer_btree_leaf_elm, data_len);
	OFF(hammer_btree_leaf_elm, data_crc);

	SSIZE(hammer_pseudofs_data);
	OFF(hammer_pseudofs_data, sync_low_tid);
	OFF(hammer_pseudofs_data, sync_beg_tid);
	OFF(hammer_pseudofs_data, sync_end_tid);
	OFF(hammer_pseudofs_data, sync_beg_ts);
	OFF(hammer_pseudofs_data, sync_end_ts);
	OFF(hammer_pseudofs_data, shared_uuid);
	OFF(hammer_pseudofs_data, unique_uuid);
	OFF(hammer_pseudofs_data, reserved01);
	OFF(hammer_pseudofs_data, mirror_flags);
	OFF(hammer_pseudofs_data, label);
	OFF(hammer_pseudofs_data, snapshots);
	OFF(hammer_pseudofs_data, reserved02);
	OFF(hammer_pseudofs_data, reserved03);
	OFF(hammer_pseudofs_data, reserved04);
	OFF(hammer_pseudofs_data, prune_min);
	OFF(hammer_pseudofs_data, prune_max);
	OFF(hammer_pseudofs_data, reserved);

	SSIZE(hammer_ioc_head);
	OFF(hammer_ioc_head, flags);
	OFF(hammer_ioc_head, error);
	OFF(hammer_ioc_head, reserved01);

	SSIZE(hammer_ioc_synctid);
	OFF(hammer_ioc_synctid, head);
	OFF(hammer_ioc_synctid, op);
	OFF(hammer_ioc_synctid, tid);

	SSIZE(hammer_ioc_pseudofs_rw);
	OFF(hammer_ioc_pseudofs_rw, head);
	OFF(hammer_ioc_pseudofs_rw, pfs_id);
	OFF(hammer_ioc_pseudofs_rw, bytes);
	OFF(hammer_ioc_pseudofs_rw, version);
	OFF(hammer_ioc_pseudofs_rw, reserved01);
	OFF(hammer_ioc_pseudofs_rw, ondisk);

	SSIZE(hammer_ioc_mirror_rw);
	OFF(hammer_ioc_mirror_rw, head);
	OFF(hammer_ioc_mirror_rw, key_beg);
	OFF(hammer_ioc_mirror_rw, key_end);
	OFF(hammer_ioc_mirror_rw, key_cur);
	OFF(hammer_ioc_mirror_rw, tid_beg);
	OFF(hammer_ioc_mirror_rw, tid_end);
	OFF(hammer_ioc_mirror_rw, ubuf);
	OFF(hammer_ioc_mirror_rw, count);
	OFF(hammer_ioc_mirror_rw, size);
	OFF(hammer_ioc_mirror_rw, pfs_id);
	OFF(hammer_ioc_mirror_rw, reserved01);
	OFF(hammer_ioc_mirror_rw, shared_uuid);

	SSIZE(hammer_ioc_mrecord_head);
	OFF(hammer_ioc_mrecord_head, signature);
	OFF(hammer_ioc_mrecord_head, rec_crc);
	OFF(hammer_ioc_mrecord_head, rec_size);
	OFF(hammer_ioc_mrecord_head, type);

	SSIZE(hammer_ioc_mrecord_rec);
	OFF(hammer_ioc_mrecord_rec, head);
	OFF(hammer_ioc_mrecord_rec, leaf);

	SSIZE(hammer_ioc_mrecord_skip);
	OFF(hammer_ioc_mrecord_skip, head);
	OFF(hammer_ioc_mrecord_skip, skip_beg);
	OFF(hammer_ioc_mrecord_skip, skip_end);

	SSIZE(hammer_ioc_mrecord_update);
	OFF(hammer_ioc_mrecord_update, head);
	OFF(hammer_ioc_mrecord_update, tid);

	SSIZE(hammer_ioc_mrecord_sync);
	OFF(hammer_ioc_mrecord_sync, head);

	SSIZE(hammer_ioc_mrecord_pfs);
	OFF(hammer_ioc_mrecord_pfs, head);
	OFF(hammer_ioc_mrecord_pfs, version);
	OFF(hammer_ioc_mrecord_pfs, reserved01);
	OFF(hammer_ioc_mrecord_pfs, pfsd);

	SSIZE(hammer_ioc_version);
	OFF(hammer_ioc_version, head);
	OFF(hammer_ioc_version, cur_version);
	OFF(hammer_ioc_version, min_version);
	OFF(hammer_ioc_version, wip_version);
	OFF(hammer_ioc_version, max_version);
	OFF(hammer_ioc_version, description);

	SSIZE(hammer_snapshot_data);
	OFF(hammer_snapshot_data, tid);
	OFF(hammer_snapshot_data, ts);
	OFF(hammer_snapshot_data, reserved01);
	OFF(hammer_snapshot_data, reserved02);
	OFF(hammer_snapshot_data, label);
	OFF(hammer_snapshot_data, reserved03);

	SSIZE(hammer_ioc_snapshot);
	OFF(hammer_ioc_snapshot, head);
	OFF(hammer_ioc_snapshot, reserved01);
	OFF(hammer_ioc_snapshot, index);
	OFF(hammer_ioc_snapshot, count);
	OFF(hammer_ioc_snapshot, snaps);

	USIZE(hammer_ioc_mrecord_any);

	CONST(HAMMER_MREC_HEADSIZE);
	CONST(HAMMER_MREC_CRCOFF);
	CONST(HAMMER_HEAD_ALIGN);
	CONST(HAMMER_XBUFSIZE);
	CONST(HAMMER_IOC_PSEUDOFS_VERSION);
	CONST(HAMMER_SNAPS_PER_IOCTL);
	HEX(HAMMER_IOC_MIRROR_SIGNATURE);
	HEX(HAMMER_IOC_MIRROR_SIGNATURE_REV);
	HEX(HAMMER_IOC_HEAD_ERROR);
	HEX(HAMMER_IOC_HEAD_INTR);
	HEX(HAMMER_IOC_MIRROR_NODATA);
	HEX(HAMMER_MREC_TYPE_REC_BADCRC);
	HEX(HAMMER_MREC_TYPE_REC_NODATA);
	HEX(HAMMER_IOC_SNAPSHOT_EOF);

	IOC(HAMMERIOC_SYNCTID);
	IOC(HAMMERIOC_SET_PSEUDOFS);
	IOC(HAMMERIOC_GET_PSEUDOFS);
	IOC(HAMMERIOC_MIRROR_READ);
	IOC(HAMMERIOC_MIRROR_WRITE);
	IOC(HAMMERIOC_UPG_PSEUDOFS);
	IOC(HAMMERIOC_DGD_PSEUDOFS);
	IOC(HAMMERIOC_RMR_PSEUDOFS);
	IOC(HAMMERIOC_WAI_PSEUDOFS);
	IOC(HAMMERIOC_GET_VERSION);
	IOC(HAMMERIOC_ADD_SNAPSHOT);
	IOC(HAMMERIOC_DEL_SNAPSHOT);
	IOC(HAMMERIOC_GET_SNAPSHOT);
	return 0;
}
