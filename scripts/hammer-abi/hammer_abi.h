/*
 * hammer_abi.h - DragonFly BSD HAMMER (v1) mirror-stream and ioctl ABI,
 * transcribed for compiling on any LP64 host (the golden-vector generators
 * in this directory). Nothing here is invented: every definition is copied
 * from the DragonFly header named above it, in repository
 * DragonFlyBSD/DragonFlyBSD, at the commit given. Only the integer typedefs
 * (u_int32_t -> uint32_t) and the removal of kernel-only parts differ.
 *
 * Layouts are those of x86_64 (LP64); hammer-mirror's src/ioctl/kernel.rs
 * asserts the same numbers (tests/fixtures/abi.txt, printed by abi_check.c).
 */
#ifndef HAMMER_ABI_H_
#define HAMMER_ABI_H_

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
 * sys/sys/ioccom.h @ 74b5eb2394c72667536e2c7115616aa8a7e8b612
 * (the older @ 1de703daf67320d643c7695d9bf7ec54c33d5512 spells
 * IOCPARM_MASK as the literal 0x1fff: same value)
 *
 * The host's own <sys/ioctl.h> would define Linux's _IOC; it is not
 * included, and any earlier definition is replaced.
 */
#undef IOCPARM_SHIFT
#undef IOCPARM_MASK
#undef IOCPARM_LEN
#undef IOCBASECMD
#undef IOCGROUP
#undef IOC_VOID
#undef IOC_OUT
#undef IOC_IN
#undef IOC_INOUT
#undef IOC_DIRMASK
#undef _IOC
#undef _IO
#undef _IOR
#undef _IOW
#undef _IOWR

#define	IOCPARM_SHIFT	13		/* number of bits for ioctl size */
#define	IOCPARM_MASK	((1 << IOCPARM_SHIFT) - 1) /* parameter length mask */
#define	IOCPARM_LEN(x)	(((x) >> 16) & IOCPARM_MASK)
#define	IOCBASECMD(x)	((x) & ~(IOCPARM_MASK << 16))
#define	IOCGROUP(x)	(((x) >> 8) & 0xff)

#define	IOC_VOID	0x20000000	/* no parameters */
#define	IOC_OUT		0x40000000	/* copy out parameters */
#define	IOC_IN		0x80000000	/* copy in parameters */
#define	IOC_INOUT	(IOC_IN|IOC_OUT)
#define	IOC_DIRMASK	0xe0000000	/* mask for IN/OUT/VOID */

#define	_IOC(inout,group,num,len) \
	((unsigned long)(inout | ((len & IOCPARM_MASK) << 16) | ((group) << 8) | (num)))
#define	_IO(g,n)	_IOC(IOC_VOID,	(g), (n), 0)
#define	_IOR(g,n,t)	_IOC(IOC_OUT,	(g), (n), sizeof(t))
#define	_IOW(g,n,t)	_IOC(IOC_IN,	(g), (n), sizeof(t))
/* this should be _IORW, but stdio got there first */
#define	_IOWR(g,n,t)	_IOC(IOC_INOUT,	(g), (n), sizeof(t))

/* ------------------------------------------------------------------------
 * sys/sys/uuid.h @ 18cb7adda0e99dc4fe06d46e5cb9183842b8ecf4
 */
#define	_UUID_NODE_LEN		6

/*
 * A DCE 1.1 compatible source representation of UUIDs.
 */
struct uuid {
	uint32_t	time_low;
	uint16_t	time_mid;
	uint16_t	time_hi_and_version;
	uint8_t		clock_seq_hi_and_reserved;
	uint8_t		clock_seq_low;
	uint8_t		node[_UUID_NODE_LEN];
};

/* XXX namespace pollution? */
typedef struct uuid uuid_t;

/* ------------------------------------------------------------------------
 * sys/vfs/hammer/hammer_disk.h: newest stored version (the one with
 * `typedef uuid_t hammer_uuid_t` and `reserved02; was prune_{time,freq}`);
 * the 2008 version @ e04ee2deffe511013c324e593719d66829589284 has the same
 * layout with int16 prune_time/prune_freq/reblock_time/reblock_freq and
 * int32 snapshot_freq in place of reserved02..04, already __packed.
 */
typedef uint64_t hammer_tid_t;
typedef uint64_t hammer_off_t;
typedef uint32_t hammer_crc_t;
typedef uuid_t hammer_uuid_t;

#define HAMMER_MIN_TID		0ULL			/* unsigned */
#define HAMMER_MAX_TID		0xFFFFFFFFFFFFFFFFULL	/* unsigned */
#define HAMMER_MIN_KEY		-0x8000000000000000LL	/* signed */
#define HAMMER_MAX_KEY		0x7FFFFFFFFFFFFFFFLL	/* signed */
#define HAMMER_MIN_OBJID	HAMMER_MIN_KEY		/* signed */
#define HAMMER_MAX_OBJID	HAMMER_MAX_KEY		/* signed */

#define HAMMER_XBUFSIZE		65536

#define HAMMER_HEAD_ALIGN		8
#define HAMMER_HEAD_ALIGN_MASK		(HAMMER_HEAD_ALIGN - 1)
#define HAMMER_HEAD_DOALIGN(bytes)	\
	(((bytes) + HAMMER_HEAD_ALIGN_MASK) & ~HAMMER_HEAD_ALIGN_MASK)

#define HAMMER_RECTYPE_INODE		1	/* inode in obj_id space */
#define HAMMER_RECTYPE_DATA		0x0010
#define HAMMER_RECTYPE_DIRENTRY		0x0011

#define HAMMER_OBJTYPE_DIRECTORY	1
#define HAMMER_OBJTYPE_REGFILE		2

/*
 * struct hammer_inode_data is only needed for its size and
 * HAMMER_INODE_CRCSIZE = offsetof(struct hammer_inode_data, mtime) = 112;
 * see hammer_crc_get_leaf() in hammer_crc.h.
 */
#define HAMMER_INODE_DATA_SIZE		128
#define HAMMER_INODE_CRCSIZE		112

/*
 * We need to pack this structure making it equally sized on both 32-bit and
 * 64-bit machines as it is part of struct hammer_ioc_mrecord_pfs which is
 * send over the wire in hammer mirror operations. [...]
 */
struct hammer_pseudofs_data {
	hammer_tid_t	sync_low_tid;	/* full history beyond this point */
	hammer_tid_t	sync_beg_tid;	/* earliest tid w/ full history avail */
	hammer_tid_t	sync_end_tid;	/* current synchronizatoin point */
	uint64_t	sync_beg_ts;	/* real-time of last completed sync */
	uint64_t	sync_end_ts;	/* initiation of current sync cycle */
	hammer_uuid_t	shared_uuid;	/* shared uuid (match required) */
	hammer_uuid_t	unique_uuid;	/* unique uuid of this master/slave */
	int32_t		reserved01;	/* reserved for future master_id */
	int32_t		mirror_flags;	/* misc flags */
	char		label[64];	/* filesystem space label */
	char		snapshots[64];	/* softlink dir for pruning */
	int32_t		reserved02;	/* was prune_{time,freq} */
	int32_t		reserved03;	/* was reblock_{time,freq} */
	int32_t		reserved04;	/* was snapshot_freq */
	int32_t		prune_min;	/* do not prune recent history */
	int32_t		prune_max;	/* do not retain history beyond here */
	int32_t		reserved[16];
} __attribute__((__packed__));		/* __packed in the DragonFly source */

typedef struct hammer_pseudofs_data *hammer_pseudofs_data_t;

#define HAMMER_PFSD_SLAVE	0x00000001
#define HAMMER_PFSD_DELETED	0x80000000

/*
 * Snapshot meta-data { Objid = HAMMER_OBJID_ROOT, Key = tid, rectype = SNAPSHOT }.
 *
 * Snapshot records replace the old <fs>/snapshots/<softlink> methodology.  Snapshot
 * records are mirrored but may be independently managed once they are laid down on
 * a slave.
 *
 * NOTE: The b-tree key is signed, the tid is not, so callers must still sort the
 *	 results.
 *
 * NOTE: Reserved fields must be zero (as usual)
 */
typedef struct hammer_snapshot_data {
	hammer_tid_t	tid;		/* the snapshot TID itself (== key) */
	uint64_t	ts;		/* real-time when snapshot was made */
	uint64_t	reserved01;
	uint64_t	reserved02;
	char		label[64];	/* user-supplied description */
	uint64_t	reserved03[4];
} *hammer_snapshot_data_t;

/* ------------------------------------------------------------------------
 * sys/vfs/hammer/hammer_btree.h @ c82af9046364dc3a6599ca61f70341882ae2c4a5
 */

/*
 * Common base for all B-Tree element types (40 bytes)
 */
struct hammer_base_elm {
	int64_t	obj_id;		/* 00 object record is associated with */
	int64_t key;		/* 08 indexing key (offset or namekey) */

	hammer_tid_t create_tid; /* 10 transaction id for record creation */
	hammer_tid_t delete_tid; /* 18 transaction id for record update/del */

	uint16_t rec_type;	/* 20 _RECTYPE_ */
	uint8_t obj_type;	/* 22 _OBJTYPE_ (restricted) */
	uint8_t btype;		/* 23 B-Tree element type */
	uint32_t localization;	/* 24 B-Tree localization parameter */
				/* 28 */
};

typedef struct hammer_base_elm *hammer_base_elm_t;

#define HAMMER_LOCALIZE_INODE		0x00000001
#define HAMMER_LOCALIZE_MISC		0x00000002
#define HAMMER_LOCALIZE_MASK		0x0000FFFF
#define HAMMER_LOCALIZE_PSEUDOFS_MASK	0xFFFF0000

/*
 * Leaf B-Tree element (40 + 24 = 64 bytes).
 *
 * NOTE: create_ts/delete_ts are not used by any core algorithms, they are
 *       used only by userland to present nominal real-time date strings
 *	 to the user.
 */
struct hammer_btree_leaf_elm {
	struct hammer_base_elm base;
	uint32_t	create_ts;
	uint32_t	delete_ts;
	hammer_off_t	data_offset;
	int32_t		data_len;
	hammer_crc_t	data_crc;
};

typedef struct hammer_btree_leaf_elm *hammer_btree_leaf_elm_t;

#define HAMMER_BTREE_TYPE_INTERNAL	((uint8_t)'I')
#define HAMMER_BTREE_TYPE_LEAF		((uint8_t)'L')
#define HAMMER_BTREE_TYPE_RECORD	((uint8_t)'R')
#define HAMMER_BTREE_TYPE_DELETED	((uint8_t)'D')

/* ------------------------------------------------------------------------
 * sys/vfs/hammer/hammer_ioctl.h @ 17b150c600a9d06b2d15292ef4cf2a27ff1d221d
 * (@ fc78c6de2bf804eb8e3f6d74093bfe0d00e99e46: identical for these structs,
 * but for hammer_ioc_snapshot's reserved01, there named unused01)
 */

/*
 * Common HAMMER ioctl header
 *
 * Global flags are stored in the upper 16 bits.
 */
struct hammer_ioc_head {
	int32_t		flags;
	int32_t		error;
	int32_t		reserved01[4];
};

#define HAMMER_IOC_HEAD_ERROR	0x00008000
#define HAMMER_IOC_HEAD_INTR	0x00010000

/*
 * HAMMERIOC_SYNCTID
 */
enum hammer_synctid_op {
	HAMMER_SYNCTID_NONE,	/* no sync (TID will not be accurate) */
	HAMMER_SYNCTID_ASYNC,	/* async (TID will not be accurate) */
	HAMMER_SYNCTID_SYNC1,	/* single sync - might undo after crash */
	HAMMER_SYNCTID_SYNC2	/* double sync - guarantee no undo */
};

struct hammer_ioc_synctid {
	struct hammer_ioc_head	head;
	enum hammer_synctid_op	op;
	hammer_tid_t		tid;
};

/*
 * HAMMERIOC_GET_PSEUDOFS
 * HAMMERIOC_SET_PSEUDOFS
 * HAMMERIOC_SCAN_PSEUDOFS
 */
struct hammer_ioc_pseudofs_rw {
	struct hammer_ioc_head	head;
	int			pfs_id;
	uint32_t		bytes;
	uint32_t		version;
	uint32_t		reserved01;
	hammer_pseudofs_data_t	ondisk;
};

#define HAMMER_IOC_PSEUDOFS_VERSION	1

/*
 * HAMMERIOC_MIRROR_READ/WRITE
 */
struct hammer_ioc_mirror_rw {
	struct hammer_ioc_head	head;
	struct hammer_base_elm	key_beg;	/* start forward scan */
	struct hammer_base_elm	key_end;	/* stop forward scan */
	struct hammer_base_elm	key_cur;	/* interruption point */
	hammer_tid_t		tid_beg;	/* filter modification range */
	hammer_tid_t		tid_end;	/* filter modification range */
	void			*ubuf;		/* user buffer */
	int			count;		/* current size */
	int			size;		/* max size */
	int			pfs_id;		/* PFS id being read/written */
	int			reserved01;
	uuid_t			shared_uuid;	/* validator for safety */
};

#define HAMMER_IOC_MIRROR_NODATA	0x0001	/* do not include bulk data */

/*
 * NOTE: crc is for the data block starting at rec_size, not including the
 * data[] array.
 */
typedef struct hammer_ioc_mrecord_head {
	uint32_t		signature;	/* signature for byte order */
	hammer_crc_t		rec_crc;
	uint32_t		rec_size;
	uint32_t		type;
	/* extended */
} *hammer_ioc_mrecord_head_t;

struct hammer_ioc_mrecord_rec {
	struct hammer_ioc_mrecord_head	head;
	struct hammer_btree_leaf_elm	leaf;
	/* extended by data */
};

struct hammer_ioc_mrecord_skip {
	struct hammer_ioc_mrecord_head	head;
	struct hammer_base_elm		skip_beg;
	struct hammer_base_elm		skip_end;
};

struct hammer_ioc_mrecord_update {
	struct hammer_ioc_mrecord_head	head;
	hammer_tid_t			tid;
};

struct hammer_ioc_mrecord_sync {
	struct hammer_ioc_mrecord_head	head;
};

struct hammer_ioc_mrecord_pfs {
	struct hammer_ioc_mrecord_head	head;
	uint32_t			version;
	uint32_t			reserved01;
	struct hammer_pseudofs_data	pfsd;
};

struct hammer_ioc_version {
	struct hammer_ioc_head head;
	uint32_t		cur_version;
	uint32_t		min_version;
	uint32_t		wip_version;
	uint32_t		max_version;
	char			description[64];
};

typedef union hammer_ioc_mrecord_any {
	struct hammer_ioc_mrecord_head	head;
	struct hammer_ioc_mrecord_rec	rec;
	struct hammer_ioc_mrecord_skip	skip;
	struct hammer_ioc_mrecord_update update;
	struct hammer_ioc_mrecord_update sync;
	struct hammer_ioc_mrecord_pfs	pfs;
	struct hammer_ioc_version	version;
} *hammer_ioc_mrecord_any_t;

/*
 * MREC types.  Flags are in the upper 16 bits but some are also included
 * in the type mask to force them into any switch() on the type.
 *
 * NOTE: Any record whos data is CRC-errored will have HAMMER_MRECF_CRC set,
 *	 and the bit is also part of the type mask.
 */
#define HAMMER_MREC_TYPE_RESERVED	0
#define HAMMER_MREC_TYPE_REC		1	/* record w/ data */
#define HAMMER_MREC_TYPE_PFSD		2	/* (userland only) */
#define HAMMER_MREC_TYPE_UPDATE		3	/* (userland only) */
#define HAMMER_MREC_TYPE_SYNC		4	/* (userland only) */
#define HAMMER_MREC_TYPE_SKIP		5	/* skip-range */
#define HAMMER_MREC_TYPE_PASS		6	/* record for cmp only (pass) */
#define HAMMER_MREC_TYPE_TERM		7	/* (userland only) */
#define HAMMER_MREC_TYPE_IDLE		8	/* (userland only) */

#define HAMMER_MREC_TYPE_REC_BADCRC	(HAMMER_MREC_TYPE_REC | \
					 HAMMER_MRECF_CRC_ERROR)
#define HAMMER_MREC_TYPE_REC_NODATA	(HAMMER_MREC_TYPE_REC | \
					 HAMMER_MRECF_NODATA)

#define HAMMER_MRECF_TYPE_LOMASK	0x000000FF
#define HAMMER_MRECF_TYPE_MASK		0x800000FF
#define HAMMER_MRECF_CRC_ERROR		0x80000000

#define HAMMER_MRECF_DATA_CRC_BAD	0x40000000
#define HAMMER_MRECF_RECD_CRC_BAD	0x20000000
#define HAMMER_MRECF_NODATA		0x10000000

#define HAMMER_MREC_CRCOFF	(offsetof(struct hammer_ioc_mrecord_head, rec_size))
#define HAMMER_MREC_HEADSIZE	sizeof(struct hammer_ioc_mrecord_head)

#define HAMMER_IOC_MIRROR_SIGNATURE	0x4dd97272U
#define HAMMER_IOC_MIRROR_SIGNATURE_REV	0x7272d94dU

/*
 * HAMMERIOC_ADD_SNAPSHOT - Add snapshot tid(s).
 * HAMMERIOC_DEL_SNAPSHOT - Delete snapshot tids.
 * HAMMERIOC_GET_SNAPSHOT - Get/continue retrieving snapshot tids.
 *			    (finds restart point based on last snaps[] entry)
 *
 * These are per-PFS operations.
 *
 * NOTE: There is no limit on the number of snapshots, but there is a limit
 *	 on how many can be set or returned in each ioctl.
 *
 * NOTE: ADD and DEL start at snap->index.  If an error occurs the index will
 *	 point at the errored record.  snap->index must be set to 0 for GET.
 */
#define HAMMER_SNAPS_PER_IOCTL		16

#define HAMMER_IOC_SNAPSHOT_EOF		0x0008	/* no more keys */

struct hammer_ioc_snapshot {
	struct hammer_ioc_head	head;
	int			reserved01;
	uint32_t		index;
	uint32_t		count;
	struct hammer_snapshot_data snaps[HAMMER_SNAPS_PER_IOCTL];
};

/*
 * Ioctl cmd ids (the ones hammer's mirror, pfs and snapshot commands use)
 */
#define HAMMERIOC_SYNCTID	_IOWR('h',4,struct hammer_ioc_synctid)
#define HAMMERIOC_SET_PSEUDOFS	_IOWR('h',5,struct hammer_ioc_pseudofs_rw)
#define HAMMERIOC_GET_PSEUDOFS	_IOWR('h',6,struct hammer_ioc_pseudofs_rw)
#define HAMMERIOC_MIRROR_READ	_IOWR('h',7,struct hammer_ioc_mirror_rw)
#define HAMMERIOC_MIRROR_WRITE	_IOWR('h',8,struct hammer_ioc_mirror_rw)
#define HAMMERIOC_UPG_PSEUDOFS	_IOWR('h',9,struct hammer_ioc_pseudofs_rw)
#define HAMMERIOC_DGD_PSEUDOFS	_IOWR('h',10,struct hammer_ioc_pseudofs_rw)
#define HAMMERIOC_RMR_PSEUDOFS	_IOWR('h',11,struct hammer_ioc_pseudofs_rw)
#define HAMMERIOC_WAI_PSEUDOFS	_IOWR('h',12,struct hammer_ioc_pseudofs_rw)
#define HAMMERIOC_GET_VERSION	_IOWR('h',13,struct hammer_ioc_version)
#define HAMMERIOC_ADD_SNAPSHOT	_IOWR('h',18,struct hammer_ioc_snapshot)
#define HAMMERIOC_DEL_SNAPSHOT	_IOWR('h',19,struct hammer_ioc_snapshot)
#define HAMMERIOC_GET_SNAPSHOT	_IOWR('h',20,struct hammer_ioc_snapshot)

/* ------------------------------------------------------------------------
 * sys/libkern/crc32.c @ 5d2f5a36020d20ffa56b8f9578af15031bba6518
 * (crc32() is unchanged since @ 1de703daf67320d643c7695d9bf7ec54c33d5512,
 * which has no crc32_ext())
 *
 * Gary S. Brown's table-driven CRC-32, "polynomial $edb88320". DragonFly
 * ships the 256-entry table as a literal; here it is generated at startup
 * ("The table can be generated at runtime if desired") by
 * crc32_init(), which also checks two entries against the literal table.
 * crc32() and crc32_ext() are the two loops of crc32.c, verbatim.
 */
static uint32_t crc32_tab[256];

static inline int
crc32_init(void)
{
	uint32_t c;
	int i, k;

	for (i = 0; i < 256; ++i) {
		c = (uint32_t)i;
		for (k = 0; k < 8; ++k)
			c = (c & 1) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
		crc32_tab[i] = c;
	}
	/* crc32_tab[1] and [255] as printed in sys/libkern/crc32.c */
	return (crc32_tab[1] == 0x77073096U && crc32_tab[255] == 0x2d02ef8dU);
}

static inline uint32_t
crc32_ext(const void *buf, size_t size, uint32_t ocrc)
{
	const uint8_t *p;
	uint32_t crc;

	p = buf;
	crc = ~ocrc;

	while (size--)
		crc = crc32_tab[(crc ^ *p++) & 0xFF] ^ (crc >> 8);

	return crc ^ ~0U;
}

static inline uint32_t
crc32(const void *buf, size_t size)
{
	const uint8_t *p;
	uint32_t crc;

	p = buf;
	crc = ~0U;

	while (size--)
		crc = crc32_tab[(crc ^ *p++) & 0xFF] ^ (crc >> 8);

	return crc ^ ~0U;
}

#endif /* HAMMER_ABI_H_ */
