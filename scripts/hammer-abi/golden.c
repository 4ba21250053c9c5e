/*
 * golden.c - golden mirror-stream records built with DragonFly's own C
 * structures (hammer_abi.h) the way DragonFly builds them:
 *
 *   - REC / PASS / SKIP as the kernel's MIRROR_READ emits them
 *     (hammer_ioc_mirror_read(), sys/vfs/hammer/hammer_mirror.c
 *     @ f1c0ae53ab2430b23b87e0fadccbd4d5ffd1f403), into a user buffer that
 *     hammer mirror-read then write(2)s out unchanged;
 *   - PFSD / SYNC / IDLE / TERM / UPDATE as sbin/hammer's write_mrecord()
 *     (sbin/hammer/cmd_mirror.c) writes them, from the
 *     union that generate_mrec_header() filled.
 *
 * Usage: golden <outdir>   writes <outdir>/<case>.bin for every case below,
 * <outdir>/stream.bin, and <outdir>/dump.txt: what hammer_cmd_mirror_dump()
 * prints on stdout for stream.bin (its stderr lines go to dump.stderr.txt).
 *
 * Every field value lives in the tables below; tests/golden.rs keeps the
 * same values in its fn leaf_vals / skip_vals / pfsd_vals and must be
 * changed with them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hammer_abi.h"

#define SERIALBUF_SIZE	(512 * 1024)	/* cmd_mirror.c */

/* ======================================================================
 * Field values
 */

#define PFS_ID		5
#define LO(t)		(((uint32_t)PFS_ID << 16) | (t))

/* The TID window of the mirror-read (PFSD #2's sync_beg_tid/sync_end_tid). */
#define TID_BEG		0xc0ffee0000001000ULL
#define TID_END		0xc0ffee00fffff000ULL
/* The source's own sync_end_tid (PFSD #1): the histogram cut TID_END below it. */
#define SRC_SYNC_END	0xc0ffee0123456000ULL

#define F_MEDIA_BAD	0x0001	/* data fails its CRC on the source (EDOM) */

struct leaf_vals {
	const char	*name;
	int64_t		obj_id;
	int64_t		key;
	hammer_tid_t	create_tid;
	hammer_tid_t	delete_tid;
	uint16_t	rec_type;
	uint8_t		obj_type;
	uint32_t	localization;
	uint32_t	create_ts;
	uint32_t	delete_ts;
	hammer_off_t	data_offset;
	int32_t		data_len;
	uint8_t		seed;		/* data[i] = pattern(seed, i) */
	int		flags;
};

/*
 * B-Tree leaves as they sit on the source's disk (btype 'R'). What the
 * kernel makes of them depends on TID_BEG/TID_END: create_tid < TID_BEG
 * gives a PASS, create_tid > TID_END nothing, else a REC whose delete_tid
 * is cleared when it lies beyond TID_END.
 */
static const struct leaf_vals LEAVES[] = {
	/* REC without data (data_offset 0) */
	{ "rec_0", -0x0000000100000001LL, HAMMER_MIN_KEY,
	  0xc0ffee0000001010ULL, 0, HAMMER_RECTYPE_DATA, HAMMER_OBJTYPE_REGFILE,
	  LO(HAMMER_LOCALIZE_MISC), 0x65a1b2c3, 0, 0, 0, 0x00, 0 },
	/* delete_tid inside the window: kept */
	{ "rec_1", -0x0123456789abcdefLL, -0x0000000000004000LL,
	  0xc0ffee0000001111ULL, 0xc0ffee0000002222ULL, HAMMER_RECTYPE_DATA,
	  HAMMER_OBJTYPE_REGFILE, LO(HAMMER_LOCALIZE_MISC), 0x65a1b2c4,
	  0x65a1b2d5, 0xb000000000012340ULL, 1, 0x11, 0 },
	{ "rec_15", -0x0123456789abcdefLL, -0x0000000000003fffLL,
	  0xc0ffee00000015a5ULL, 0, HAMMER_RECTYPE_DATA, HAMMER_OBJTYPE_REGFILE,
	  LO(HAMMER_LOCALIZE_MISC), 0x65a1b2c5, 0, 0xb000000000012380ULL, 15,
	  0x15, 0 },
	/* delete_tid beyond the window: the kernel sends 0 */
	{ "rec_16", -0x0123456789abcdefLL, -0x0000000000003ff0LL,
	  0xc0ffee0000001616ULL, 0xfffffffffffffff0ULL, HAMMER_RECTYPE_DATA,
	  HAMMER_OBJTYPE_REGFILE, LO(HAMMER_LOCALIZE_MISC), 0x65a1b2c6,
	  0x7fffffff, 0xb0000000000123c0ULL, 16, 0x16, 0 },
	{ "rec_17", -2LL, HAMMER_MAX_KEY,
	  TID_END, 0, HAMMER_RECTYPE_DATA, HAMMER_OBJTYPE_REGFILE,
	  LO(HAMMER_LOCALIZE_MISC), 0xfffffffe, 0, 0xb000000000012400ULL, 17,
	  0x17, 0 },
	{ "rec_65536", -0x0123456789abcdefLL, 0x0000000000100000LL,
	  0xc0ffee0000006553ULL, 0, HAMMER_RECTYPE_DATA, HAMMER_OBJTYPE_REGFILE,
	  LO(HAMMER_LOCALIZE_MISC), 0x65a1b2c7, 0, 0xa000000000400000ULL, 65536,
	  0x65, 0 },
	/* read with HAMMER_IOC_MIRROR_NODATA (the histogram prescan) */
	{ "rec_nodata", -0x0000000000000055LL, -0x0000000000000010LL,
	  0xc0ffee0000005555ULL, 0, HAMMER_RECTYPE_DATA, HAMMER_OBJTYPE_REGFILE,
	  LO(HAMMER_LOCALIZE_MISC), 0x65a1b2c8, 0, 0xb000000000020000ULL, 100,
	  0x55, 0 },
	/* the data no longer matches data_crc on the source's media */
	{ "rec_badcrc", -0x0123456789abcdefLL, 0x0000000000008000LL,
	  0xc0ffee000000bad0ULL, 0, HAMMER_RECTYPE_DATA, HAMMER_OBJTYPE_REGFILE,
	  LO(HAMMER_LOCALIZE_MISC), 0x65a1b2c9, 0, 0xb000000000030000ULL, 24,
	  0xba, F_MEDIA_BAD },
	/* created before TID_BEG: a PASS, sent with its delete_tid as is */
	{ "pass", -0x0123456789abcdefLL, 0x0000000000004000LL,
	  0xc0ffee0000000fffULL, 0xc0ffef0000000000ULL, HAMMER_RECTYPE_DATA,
	  HAMMER_OBJTYPE_REGFILE, LO(HAMMER_LOCALIZE_MISC), 0x65a1b2ca,
	  0x65a1b2cb, 0xa000000000800000ULL, 4096, 0xaa, 0 },
	/* an inode: data_crc covers HAMMER_INODE_CRCSIZE bytes only */
	{ "inode", -0x0123456789abcdefLL, 0,
	  0xc0ffee0000001001ULL, 0, HAMMER_RECTYPE_INODE, HAMMER_OBJTYPE_REGFILE,
	  LO(HAMMER_LOCALIZE_INODE), 0x65a1b2cc, 0, 0xb000000000040000ULL,
	  HAMMER_INODE_DATA_SIZE, 0x01, 0 },
	/* created after TID_END: the kernel skips it */
	{ "future", -0x0123456789abcdefLL, 0x0000000000010000LL,
	  TID_END + 1, 0, HAMMER_RECTYPE_DATA, HAMMER_OBJTYPE_REGFILE,
	  LO(HAMMER_LOCALIZE_MISC), 0x65a1b2cd, 0, 0xb000000000050000ULL, 8,
	  0xf0, 0 },
};

struct skip_vals {
	const char		*name;
	struct hammer_base_elm	beg;
	struct hammer_base_elm	end;
};

/* Boundaries of an internal node's subtree with nothing newer than TID_BEG. */
static const struct skip_vals SKIPS[] = {
	{ "skip",
	  { -0x0123456789abcdefLL, 0x0000000000200000LL, 0xc0ffee0000000001ULL,
	    0, HAMMER_RECTYPE_DATA, 0, HAMMER_BTREE_TYPE_LEAF,
	    LO(HAMMER_LOCALIZE_MISC) },
	  { -0x0000000000000100LL, HAMMER_MAX_KEY, 0, 0xc0ffee0000000002ULL,
	    HAMMER_RECTYPE_DIRENTRY, HAMMER_OBJTYPE_DIRECTORY,
	    HAMMER_BTREE_TYPE_INTERNAL, LO(HAMMER_LOCALIZE_MISC) } },
};

static const struct uuid SHARED_UUID = {	/* 3f2504e0-4f89-11d3-9a0c-0305e82c3301 */
	0x3f2504e0, 0x4f89, 0x11d3, 0x9a, 0x0c,
	{ 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01 } };
static const struct uuid UNIQUE_UUID = {	/* c0ffee00-1234-4567-89ab-cdef01234567 */
	0xc0ffee00, 0x1234, 0x4567, 0x89, 0xab,
	{ 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67 } };

/*
 * What GET_PSEUDOFS copies out for the source PFS (PFSD #1); PFSD #2 is the
 * same with sync_end_tid = TID_END.
 */
static void
pfsd_vals(struct hammer_pseudofs_data *pfsd, hammer_tid_t sync_end_tid)
{
	int i;

	pfsd->sync_low_tid = 0xc0ffee0000000100ULL;
	pfsd->sync_beg_tid = TID_BEG;
	pfsd->sync_end_tid = sync_end_tid;
	pfsd->sync_beg_ts = 0x0005f1d2c3b4a596ULL;
	pfsd->sync_end_ts = 0x0005f1d2c3b4a5ffULL;
	pfsd->shared_uuid = SHARED_UUID;
	pfsd->unique_uuid = UNIQUE_UUID;
	pfsd->reserved01 = -1;
	pfsd->mirror_flags = HAMMER_PFSD_SLAVE;
	snprintf(pfsd->label, sizeof(pfsd->label), "%s",
		 "golden PFS #5 \"label\"");
	snprintf(pfsd->snapshots, sizeof(pfsd->snapshots), "%s",
		 "/var/hammer/golden");
	pfsd->reserved02 = 0x00020003;
	pfsd->reserved03 = 0x00040005;
	pfsd->reserved04 = 3600;
	pfsd->prune_min = 7 * 24 * 60 * 60;
	pfsd->prune_max = 0x7fffffff;
	for (i = 0; i < 16; ++i)
		pfsd->reserved[i] = (int32_t)(0x5eed0000 | i);
}

static uint8_t
pattern(uint8_t seed, uint32_t i)
{
	return (uint8_t)(i * 0x9d + (i >> 8) * 0x3b + seed);
}

/* ======================================================================
 * Helpers
 */

static const struct leaf_vals *
find_leaf(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(LEAVES) / sizeof(LEAVES[0]); ++i) {
		if (strcmp(LEAVES[i].name, name) == 0)
			return &LEAVES[i];
	}
	fprintf(stderr, "golden: no leaf %s\n", name);
	exit(1);
}

static const struct skip_vals *
find_skip(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(SKIPS) / sizeof(SKIPS[0]); ++i) {
		if (strcmp(SKIPS[i].name, name) == 0)
			return &SKIPS[i];
	}
	fprintf(stderr, "golden: no skip %s\n", name);
	exit(1);
}

/*
 * The data crc HAMMER version <= 6 stores (hammer_crc_set_leaf(): crc32;
 * inodes stop at HAMMER_INODE_CRCSIZE).
 */
static hammer_crc_t
leaf_data_crc_v6(const void *data, const struct hammer_btree_leaf_elm *leaf)
{
	if (leaf->data_len == 0)
		return 0;
	if (leaf->base.rec_type == HAMMER_RECTYPE_INODE)
		return crc32(data, HAMMER_INODE_CRCSIZE);
	return crc32(data, leaf->data_len);
}

/* hammer_crc_test_leaf() of the two-argument (pre-version-7) hammer_crc.h */
static int
hammer_crc_test_leaf(void *data, hammer_btree_leaf_elm_t leaf)
{
	hammer_crc_t crc;

	if (leaf->data_len == 0)
		return 1;
	if (leaf->base.rec_type == HAMMER_RECTYPE_INODE) {
		if (leaf->data_len != HAMMER_INODE_DATA_SIZE)
			return 0;
		crc = crc32(data, HAMMER_INODE_CRCSIZE);
	} else {
		crc = crc32(data, leaf->data_len);
	}
	return (leaf->data_crc == crc);
}

/* One leaf element on the source's disk, with its data (cursor.data). */
struct disk_leaf {
	struct hammer_btree_leaf_elm	elm;
	uint8_t				*data;
	int				media_bad;
};

static void
make_leaf(struct disk_leaf *dl, const struct leaf_vals *v)
{
	uint32_t i;

	memset(dl, 0, sizeof(*dl));
	dl->elm.base.obj_id = v->obj_id;
	dl->elm.base.key = v->key;
	dl->elm.base.create_tid = v->create_tid;
	dl->elm.base.delete_tid = v->delete_tid;
	dl->elm.base.rec_type = v->rec_type;
	dl->elm.base.obj_type = v->obj_type;
	dl->elm.base.btype = HAMMER_BTREE_TYPE_RECORD;
	dl->elm.base.localization = v->localization;
	dl->elm.create_ts = v->create_ts;
	dl->elm.delete_ts = v->delete_ts;
	dl->elm.data_offset = v->data_offset;
	dl->elm.data_len = v->data_len;
	dl->data = calloc(1, (size_t)v->data_len + 1);
	for (i = 0; i < (uint32_t)v->data_len; ++i)
		dl->data[i] = pattern(v->seed, i);
	dl->elm.data_crc = leaf_data_crc_v6(dl->data, &dl->elm);
	if (v->flags & F_MEDIA_BAD) {
		/* the CRC stored when it was written; the media changed since */
		dl->elm.data_crc ^= 0x0badc0deU;
		dl->media_bad = 1;
	}
}

/* ======================================================================
 * Kernel side: hammer_ioc_mirror_read()'s record construction, one
 * B-Tree element at a time, into mirror->ubuf at mirror->count.
 */
struct kmirror {
	struct hammer_ioc_mirror_rw	mirror;
	union hammer_ioc_mrecord_any	mrec;	/* bzero()d once per ioctl */
};

static void
kernel_begin(struct kmirror *k, char *buf, int size, int32_t flags)
{
	memset(k, 0, sizeof(*k));
	k->mirror.head.flags = flags;
	k->mirror.tid_beg = TID_BEG;
	k->mirror.tid_end = TID_END;
	k->mirror.ubuf = buf;
	k->mirror.size = size;
	k->mirror.count = 0;
	k->mirror.pfs_id = PFS_ID;
	memset(buf, 0, (size_t)size);	/* a fresh buffer: pads read as 0 */
}

/* An internal node hit in mirror-filtered mode: a SKIP record. */
static void
kernel_skip(struct kmirror *k, const struct skip_vals *v)
{
	struct hammer_ioc_mirror_rw *mirror = &k->mirror;
	const int crc_start = HAMMER_MREC_CRCOFF;
	char *uptr = (char *)mirror->ubuf + mirror->count;
	int bytes;

	mirror->key_cur = v->beg;
	bytes = sizeof(k->mrec.skip);
	if (mirror->count + HAMMER_HEAD_DOALIGN(bytes) > mirror->size)
		abort();

	k->mrec.head.signature = HAMMER_IOC_MIRROR_SIGNATURE;
	k->mrec.head.type = HAMMER_MREC_TYPE_SKIP;
	k->mrec.head.rec_size = bytes;
	k->mrec.skip.skip_beg = v->beg;
	k->mrec.skip.skip_end = v->end;
	k->mrec.head.rec_crc = crc32(&k->mrec.head.rec_size,
				     bytes - crc_start);
	memcpy(uptr, &k->mrec, bytes);			/* copyout */
	mirror->count += HAMMER_HEAD_DOALIGN(bytes);
}

/* A leaf: nothing, a PASS or a REC (with data, NODATA or CRC-errored). */
static void
kernel_leaf(struct kmirror *k, const struct disk_leaf *dl)
{
	struct hammer_ioc_mirror_rw *mirror = &k->mirror;
	const struct hammer_btree_leaf_elm *elm = &dl->elm;
	const int crc_start = HAMMER_MREC_CRCOFF;
	char *uptr = (char *)mirror->ubuf + mirror->count;
	int data_len;
	int bytes;
	int mrec_flags;
	uint32_t rec_crc;

	mirror->key_cur = elm->base;

	if (elm->base.create_tid > mirror->tid_end)
		return;

	if (elm->base.create_tid < mirror->tid_beg) {
		bytes = sizeof(k->mrec.rec);
		if (mirror->count + HAMMER_HEAD_DOALIGN(bytes) > mirror->size)
			abort();
		k->mrec.head.signature = HAMMER_IOC_MIRROR_SIGNATURE;
		k->mrec.head.type = HAMMER_MREC_TYPE_PASS;
		k->mrec.head.rec_size = bytes;
		k->mrec.rec.leaf = *elm;
		k->mrec.head.rec_crc = crc32(&k->mrec.head.rec_size,
					     bytes - crc_start);
		memcpy(uptr, &k->mrec, bytes);		/* copyout */
		mirror->count += HAMMER_HEAD_DOALIGN(bytes);
		return;
	}

	mrec_flags = 0;
	data_len = (elm->data_offset) ? elm->data_len : 0;
	if (data_len &&
	    (mirror->head.flags & HAMMER_IOC_MIRROR_NODATA)) {
		data_len = 0;
		mrec_flags |= HAMMER_MRECF_NODATA;
	}
	if (data_len && dl->media_bad) {
		/* hammer_btree_extract() returned EDOM */
		mrec_flags |= HAMMER_MRECF_CRC_ERROR |
			      HAMMER_MRECF_DATA_CRC_BAD;
	}

	bytes = sizeof(k->mrec.rec) + data_len;
	if (mirror->count + HAMMER_HEAD_DOALIGN(bytes) > mirror->size)
		abort();

	k->mrec.head.signature = HAMMER_IOC_MIRROR_SIGNATURE;
	k->mrec.head.type = HAMMER_MREC_TYPE_REC | mrec_flags;
	k->mrec.head.rec_size = bytes;
	k->mrec.rec.leaf = *elm;

	if (elm->base.delete_tid > mirror->tid_end)
		k->mrec.rec.leaf.base.delete_tid = 0;
	rec_crc = crc32(&k->mrec.head.rec_size,
			sizeof(k->mrec.rec) - crc_start);
	if (data_len)
		rec_crc = crc32_ext(dl->data, data_len, rec_crc);
	k->mrec.head.rec_crc = rec_crc;
	memcpy(uptr, &k->mrec, sizeof(k->mrec.rec));	/* copyout */
	if (data_len)
		memcpy(uptr + sizeof(k->mrec.rec), dl->data, data_len);
	mirror->count += HAMMER_HEAD_DOALIGN(bytes);
}

/* ======================================================================
 * Userland side: sbin/hammer/cmd_mirror.c
 */

static void
write_mrecord(int fdout, uint32_t type, hammer_ioc_mrecord_any_t mrec,
	      int bytes)
{
	char zbuf[HAMMER_HEAD_ALIGN];
	int pad;

	pad = HAMMER_HEAD_DOALIGN(bytes) - bytes;

	if (bytes < (int)sizeof(mrec->head))
		abort();
	memset(&mrec->head, 0, sizeof(mrec->head));
	mrec->head.signature = HAMMER_IOC_MIRROR_SIGNATURE;
	mrec->head.type = type;
	mrec->head.rec_size = bytes;
	mrec->head.rec_crc = crc32((char *)mrec + HAMMER_MREC_CRCOFF,
				   bytes - HAMMER_MREC_CRCOFF);
	if (write(fdout, mrec, bytes) != bytes) {
		fprintf(stderr, "write_mrecord: error %d (%s)\n",
			errno, strerror(errno));
		exit(1);
	}
	if (pad) {
		memset(zbuf, 0, pad);
		if (write(fdout, zbuf, pad) != pad) {
			fprintf(stderr, "write_mrecord: error %d (%s)\n",
				errno, strerror(errno));
			exit(1);
		}
	}
}

/* generate_mrec_header(), with pfsd_vals() standing in for GET_PSEUDOFS. */
static void
generate_mrec_header(union hammer_ioc_mrecord_any *mrec_tmp,
		     hammer_tid_t sync_end_tid)
{
	memset(mrec_tmp, 0, sizeof(*mrec_tmp));
	pfsd_vals(&mrec_tmp->pfs.pfsd, sync_end_tid);
	mrec_tmp->pfs.version = HAMMER_IOC_PSEUDOFS_VERSION;
}

static void
write_all(int fd, const void *buf, size_t n)
{
	if (write(fd, buf, n) != (ssize_t)n) {
		fprintf(stderr, "golden: write: %s\n", strerror(errno));
		exit(1);
	}
}

/* ======================================================================
 * hammer_cmd_mirror_dump() and the readers it uses, transcribed from
 * cmd_mirror.c: fd 0 becomes `fd`, printf(...) becomes fprintf(out, ...)
 * and fprintf(stderr, ...) becomes fprintf(err, ...), format strings
 * unchanged.
 */

static hammer_ioc_mrecord_any_t
read_mrecord(int fdin, int *errorp, hammer_ioc_mrecord_head_t pickup,
	     FILE *err)
{
	hammer_ioc_mrecord_any_t mrec;
	struct hammer_ioc_mrecord_head mrechd;
	size_t bytes;
	size_t n;
	ssize_t i;

	if (pickup && pickup->type != 0) {
		mrechd = *pickup;
		pickup->signature = 0;
		pickup->type = 0;
		n = HAMMER_MREC_HEADSIZE;
	} else {
		/*
		 * Read in the PFSD header from the sender.
		 */
		for (n = 0; n < HAMMER_MREC_HEADSIZE; n += i) {
			i = read(fdin, (char *)&mrechd + n, HAMMER_MREC_HEADSIZE - n);
			if (i <= 0)
				break;
		}
		if (n == 0) {
			*errorp = 0;	/* EOF */
			return(NULL);
		}
		if (n != HAMMER_MREC_HEADSIZE) {
			fprintf(err, "short read of mrecord header\n");
			*errorp = EPIPE;
			return(NULL);
		}
	}
	if (mrechd.signature != HAMMER_IOC_MIRROR_SIGNATURE) {
		fprintf(err, "read_mrecord: bad signature\n");
		*errorp = EINVAL;
		return(NULL);
	}
	bytes = HAMMER_HEAD_DOALIGN(mrechd.rec_size);
	if (bytes < sizeof(mrechd))
		abort();
	mrec = malloc(bytes);
	mrec->head = mrechd;

	while (n < bytes) {
		i = read(fdin, (char *)mrec + n, bytes - n);
		if (i <= 0)
			break;
		n += i;
	}
	if (n != bytes) {
		fprintf(err, "read_mrecord: short read on payload\n");
		*errorp = EPIPE;
		return(NULL);
	}
	if (mrec->head.rec_crc !=
	    crc32((char *)mrec + HAMMER_MREC_CRCOFF,
		  mrec->head.rec_size - HAMMER_MREC_CRCOFF)) {
		fprintf(err, "read_mrecord: bad CRC\n");
		*errorp = EINVAL;
		return(NULL);
	}
	*errorp = 0;
	return(mrec);
}

static int
read_mrecords(int fd, char *buf, unsigned int size,
	      hammer_ioc_mrecord_head_t pickup,
	      FILE *out, FILE *err)
{
	hammer_ioc_mrecord_any_t mrec;
	unsigned int count;
	size_t n;
	ssize_t i;
	size_t bytes;
	int type;

	count = 0;
	while (size - count >= HAMMER_MREC_HEADSIZE) {
		/*
		 * Cached the record header in case we run out of buffer
		 * space.
		 */
		fflush(out);
		if (pickup->signature == 0) {
			for (n = 0; n < HAMMER_MREC_HEADSIZE; n += i) {
				i = read(fd, (char *)pickup + n,
					 HAMMER_MREC_HEADSIZE - n);
				if (i <= 0)
					break;
			}
			if (n == 0)
				break;
			if (n != HAMMER_MREC_HEADSIZE) {
				fprintf(err, "read_mrecords: short read on pipe\n");
				exit(1);
			}
			if (pickup->signature != HAMMER_IOC_MIRROR_SIGNATURE) {
				fprintf(err, "read_mrecords: malformed record on pipe, "
					"bad signature\n");
				exit(1);
			}
		}
		if (pickup->rec_size < HAMMER_MREC_HEADSIZE ||
		    pickup->rec_size > sizeof(*mrec) + HAMMER_XBUFSIZE) {
			fprintf(err, "read_mrecords: malformed record on pipe, "
				"illegal rec_size\n");
			exit(1);
		}

		/*
		 * Stop if we have insufficient space for the record and data.
		 */
		bytes = HAMMER_HEAD_DOALIGN(pickup->rec_size);
		if (size - count < bytes)
			break;

		/*
		 * Stop if the record type is not a REC, SKIP, or PASS,
		 * which are the only types the ioctl supports.  Other types
		 * are used only by the userland protocol.
		 *
		 * Ignore all flags.
		 */
		type = pickup->type & HAMMER_MRECF_TYPE_LOMASK;
		if (type != HAMMER_MREC_TYPE_PFSD &&
		    type != HAMMER_MREC_TYPE_REC &&
		    type != HAMMER_MREC_TYPE_SKIP &&
		    type != HAMMER_MREC_TYPE_PASS) {
			break;
		}

		/*
		 * Read the remainder and clear the pickup signature.
		 */
		for (n = HAMMER_MREC_HEADSIZE; n < bytes; n += i) {
			i = read(fd, buf + count + n, bytes - n);
			if (i <= 0)
				break;
		}
		if (n != bytes) {
			fprintf(err, "read_mrecords: short read on pipe\n");
			exit(1);
		}

		memcpy(buf + count, pickup, HAMMER_MREC_HEADSIZE);
		pickup->signature = 0;
		pickup->type = 0;
		mrec = (void *)(buf + count);

		/*
		 * Validate the completed record
		 */
		if (mrec->head.rec_crc !=
		    crc32((char *)mrec + HAMMER_MREC_CRCOFF,
			  mrec->head.rec_size - HAMMER_MREC_CRCOFF)) {
			fprintf(err, "read_mrecords: malformed record "
					"on pipe, bad crc\n");
			exit(1);
		}

		/*
		 * If its a B-Tree record validate the data crc.
		 *
		 * NOTE: If the VFS passes us an explicitly errorde mrec
		 *	 we just pass it through.
		 */
		type = mrec->head.type & HAMMER_MRECF_TYPE_MASK;

		if (type == HAMMER_MREC_TYPE_REC) {
			if (mrec->head.rec_size <
			    sizeof(mrec->rec) + mrec->rec.leaf.data_len) {
				fprintf(err,
					"read_mrecords: malformed record on "
					"pipe, illegal element data_len\n");
				exit(1);
			}
			if (mrec->rec.leaf.data_len &&
			    mrec->rec.leaf.data_offset &&
			    hammer_crc_test_leaf(&mrec->rec + 1, &mrec->rec.leaf) == 0) {
				fprintf(err,
					"read_mrecords: data_crc did not "
					"match data! obj=%016jx key=%016jx\n",
					(uintmax_t)mrec->rec.leaf.base.obj_id,
					(uintmax_t)mrec->rec.leaf.base.key);
				fprintf(err,
					"continuing, but there are problems\n");
			}
		}
		count += bytes;
	}
	return(count);
}

static void
hammer_cmd_mirror_dump(int fd, FILE *out, FILE *err)
{
	char *buf = malloc(SERIALBUF_SIZE);
	struct hammer_ioc_mrecord_head pickup;
	hammer_ioc_mrecord_any_t mrec;
	int error;
	int size;
	int offset;
	int bytes;

	/*
	 * Read and process the PFS header
	 */
	pickup.signature = 0;
	pickup.type = 0;

	mrec = read_mrecord(fd, &error, &pickup, err);

again:
	/*
	 * Read and process bulk records
	 */
	for (;;) {
		size = read_mrecords(fd, buf, SERIALBUF_SIZE, &pickup, out, err);
		if (size <= 0)
			break;
		offset = 0;
		while (offset < size) {
			mrec = (void *)((char *)buf + offset);
			bytes = HAMMER_HEAD_DOALIGN(mrec->head.rec_size);
			if (offset + bytes > size) {
				fprintf(err, "Misaligned record\n");
				exit(1);
			}

			switch(mrec->head.type & HAMMER_MRECF_TYPE_MASK) {
			case HAMMER_MREC_TYPE_REC_BADCRC:
			case HAMMER_MREC_TYPE_REC:
				fprintf(out, "Record obj=%016jx key=%016jx "
				       "rt=%02x ot=%02x",
					(uintmax_t)mrec->rec.leaf.base.obj_id,
					(uintmax_t)mrec->rec.leaf.base.key,
					mrec->rec.leaf.base.rec_type,
					mrec->rec.leaf.base.obj_type);
				if (mrec->head.type ==
				    HAMMER_MREC_TYPE_REC_BADCRC) {
					fprintf(out, " (BAD CRC)");
				}
				fprintf(out, "\n");
				fprintf(out, "       tids %016jx:%016jx data=%d\n",
				    (uintmax_t)mrec->rec.leaf.base.create_tid,
				    (uintmax_t)mrec->rec.leaf.base.delete_tid,
				    mrec->rec.leaf.data_len);
				break;
			case HAMMER_MREC_TYPE_PASS:
				fprintf(out, "Pass   obj=%016jx key=%016jx "
				       "rt=%02x ot=%02x\n",
					(uintmax_t)mrec->rec.leaf.base.obj_id,
					(uintmax_t)mrec->rec.leaf.base.key,
					mrec->rec.leaf.base.rec_type,
					mrec->rec.leaf.base.obj_type);
				fprintf(out, "       tids %016jx:%016jx data=%d\n",
				    (uintmax_t)mrec->rec.leaf.base.create_tid,
				    (uintmax_t)mrec->rec.leaf.base.delete_tid,
					mrec->rec.leaf.data_len);
				break;
			case HAMMER_MREC_TYPE_SKIP:
				fprintf(out, "Skip   obj=%016jx key=%016jx rt=%02x to\n"
				       "       obj=%016jx key=%016jx rt=%02x\n",
				       (uintmax_t)mrec->skip.skip_beg.obj_id,
				       (uintmax_t)mrec->skip.skip_beg.key,
				       mrec->skip.skip_beg.rec_type,
				       (uintmax_t)mrec->skip.skip_end.obj_id,
				       (uintmax_t)mrec->skip.skip_end.key,
				       mrec->skip.skip_end.rec_type);
				/* FALLTHROUGH (no break in cmd_mirror.c) */
			default:
				break;
			}
			offset += bytes;
		}
	}

	/*
	 * Read and process the termination sync record.
	 */
	mrec = read_mrecord(fd, &error, &pickup, err);
	if (mrec == NULL ||
	    (mrec->head.type != HAMMER_MREC_TYPE_SYNC &&
	     mrec->head.type != HAMMER_MREC_TYPE_IDLE)
	 ) {
		fprintf(err, "Mirror-dump: Did not get termination "
				"sync record\n");
	}

	/*
	 * Continue with more batches until EOF.
	 */
	mrec = read_mrecord(fd, &error, &pickup, err);
	if (mrec)
		goto again;
	free(buf);
}

/* ======================================================================
 * The cases
 */

static char *outdir;

static int
create(const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		fprintf(stderr, "golden: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

/* Kernel MIRROR_READ over the listed elements ("skip" or a leaf name). */
static void
kernel_case(int fd, const char *const *elems, int32_t flags)
{
	static char buf[SERIALBUF_SIZE];
	struct kmirror k;
	struct disk_leaf dl;

	kernel_begin(&k, buf, SERIALBUF_SIZE, flags);
	for (; *elems; ++elems) {
		if (strncmp(*elems, "skip", 4) == 0) {
			kernel_skip(&k, find_skip(*elems));
		} else {
			make_leaf(&dl, find_leaf(*elems));
			kernel_leaf(&k, &dl);
			free(dl.data);
		}
	}
	/* mirror-read: write(1, mirror.ubuf, mirror.count) */
	write_all(fd, k.mirror.ubuf, (size_t)k.mirror.count);
}

static void
kernel_file(const char *file, const char *elem, int32_t flags)
{
	const char *elems[2] = { elem, NULL };
	int fd = create(file);

	kernel_case(fd, elems, flags);
	close(fd);
}

static void
user_file(const char *file, uint32_t type)
{
	union hammer_ioc_mrecord_any mrec_tmp;
	int fd = create(file);

	generate_mrec_header(&mrec_tmp, SRC_SYNC_END);
	switch (type) {
	case HAMMER_MREC_TYPE_PFSD:
		write_mrecord(fd, type, &mrec_tmp, sizeof(mrec_tmp.pfs));
		break;
	case HAMMER_MREC_TYPE_UPDATE:
		/* mirror-write -2: mrec_tmp.update.tid = mirror.tid_end */
		mrec_tmp.update.tid = TID_END;
		write_mrecord(fd, type, &mrec_tmp, sizeof(mrec_tmp.update));
		break;
	default:	/* SYNC, IDLE, TERM */
		write_mrecord(fd, type, &mrec_tmp, sizeof(mrec_tmp.sync));
		break;
	}
	close(fd);
}

/* One mirror-read batch, then TERM, as `hammer mirror-read` writes it. */
static void
stream_file(void)
{
	static const char *const bulk[] = {
		"inode", "rec_1", "rec_17", "pass", "future", "rec_badcrc",
		"skip", "rec_0", NULL
	};
	union hammer_ioc_mrecord_any mrec_tmp;
	int fd = create("stream.bin");

	/* PFSD #1: the source's PFS */
	generate_mrec_header(&mrec_tmp, SRC_SYNC_END);
	write_mrecord(fd, HAMMER_MREC_TYPE_PFSD, &mrec_tmp,
		      sizeof(mrec_tmp.pfs));
	/* PFSD #2: the range, sync_end_tid cut to the histogram's TID_END */
	generate_mrec_header(&mrec_tmp, SRC_SYNC_END);
	mrec_tmp.pfs.pfsd.sync_end_tid = TID_END;
	write_mrecord(fd, HAMMER_MREC_TYPE_PFSD, &mrec_tmp,
		      sizeof(mrec_tmp.pfs));
	kernel_case(fd, bulk, 0);
	write_mrecord(fd, HAMMER_MREC_TYPE_SYNC, &mrec_tmp,
		      sizeof(mrec_tmp.sync));
	write_mrecord(fd, HAMMER_MREC_TYPE_TERM, &mrec_tmp,
		      sizeof(mrec_tmp.sync));
	close(fd);
}

static void
dump_file(void)
{
	char path[4096];
	FILE *out, *err;
	int fd;

	snprintf(path, sizeof(path), "%s/stream.bin", outdir);
	fd = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "%s/dump.txt", outdir);
	out = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/dump.stderr.txt", outdir);
	err = fopen(path, "w");
	if (fd < 0 || out == NULL || err == NULL) {
		fprintf(stderr, "golden: dump: %s\n", strerror(errno));
		exit(1);
	}
	hammer_cmd_mirror_dump(fd, out, err);
	fclose(out);
	fclose(err);
	close(fd);
}

int
main(int ac, char **av)
{
	if (ac != 2) {
		fprintf(stderr, "usage: golden <outdir>\n");
		return 2;
	}
	outdir = av[1];
	if (!crc32_init() || crc32("123456789", 9) != 0xcbf43926U) {
		fprintf(stderr, "golden: crc32 table is wrong\n");
		return 1;
	}

	kernel_file("rec_0.bin", "rec_0", 0);
	kernel_file("rec_1.bin", "rec_1", 0);
	kernel_file("rec_15.bin", "rec_15", 0);
	kernel_file("rec_16.bin", "rec_16", 0);
	kernel_file("rec_17.bin", "rec_17", 0);
	kernel_file("rec_65536.bin", "rec_65536", 0);
	kernel_file("rec_nodata.bin", "rec_nodata", HAMMER_IOC_MIRROR_NODATA);
	kernel_file("rec_badcrc.bin", "rec_badcrc", 0);
	kernel_file("pass.bin", "pass", 0);
	kernel_file("skip.bin", "skip", 0);

	user_file("pfsd.bin", HAMMER_MREC_TYPE_PFSD);
	user_file("update.bin", HAMMER_MREC_TYPE_UPDATE);
	user_file("sync.bin", HAMMER_MREC_TYPE_SYNC);
	user_file("idle.bin", HAMMER_MREC_TYPE_IDLE);
	user_file("term.bin", HAMMER_MREC_TYPE_TERM);

	stream_file();
	dump_file();
	return 0;
}
