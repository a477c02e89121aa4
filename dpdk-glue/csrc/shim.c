/* See shim.h. Compiled by build.rs with DPDK's pkg-config cflags. */
#include "shim.h"

int zc_rte_errno(void) { return rte_errno; }
void zc_rte_errno_set(int v) { rte_errno = v; }
unsigned zc_rte_lcore_id(void) { return rte_lcore_id(); }
uint64_t zc_rte_rdtsc(void) { return rte_rdtsc(); }
void zc_rte_pause(void) { rte_pause(); }

struct rte_mbuf *zc_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int zc_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                              unsigned count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

int zc_rte_mbuf_raw_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                               unsigned count)
{
	return rte_mempool_get_bulk(mp, (void **)mbufs, count);
}

void zc_rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

void zc_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *zc_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *zc_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int zc_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

int zc_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail)
{
	return rte_pktmbuf_chain(head, tail);
}

uint16_t zc_rte_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t zc_rte_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint16_t zc_rte_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}

uint16_t zc_rte_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

struct rte_mbuf_ext_shared_info *
zc_rte_pktmbuf_ext_shinfo_init_helper(void *buf_addr, uint16_t *buf_len,
                                      rte_mbuf_extbuf_free_callback_t free_cb,
                                      void *fcb_opaque)
{
	return rte_pktmbuf_ext_shinfo_init_helper(buf_addr, buf_len, free_cb,
						  fcb_opaque);
}

void zc_rte_ext_shinfo_init(struct rte_mbuf_ext_shared_info *shinfo,
                            rte_mbuf_extbuf_free_callback_t free_cb,
                            void *fcb_opaque)
{
	shinfo->free_cb = free_cb;
	shinfo->fcb_opaque = fcb_opaque;
	rte_mbuf_ext_refcnt_set(shinfo, 1);
}

void zc_rte_pktmbuf_attach_extbuf(struct rte_mbuf *m, void *buf_addr,
                                  rte_iova_t buf_iova, uint16_t buf_len,
                                  struct rte_mbuf_ext_shared_info *shinfo)
{
	rte_pktmbuf_attach_extbuf(m, buf_addr, buf_iova, buf_len, shinfo);
}

void zc_attach_ext_tail(struct rte_mbuf *head, struct rte_mbuf *last,
                        struct rte_mbuf *m, void *buf_addr, rte_iova_t buf_iova,
                        uint16_t len, struct rte_mbuf_ext_shared_info *shinfo,
                        rte_mbuf_extbuf_free_callback_t free_cb,
                        void *fcb_opaque)
{
	shinfo->free_cb = free_cb;
	shinfo->fcb_opaque = fcb_opaque;
	rte_mbuf_ext_refcnt_set(shinfo, 1);
	rte_pktmbuf_attach_extbuf(m, buf_addr, buf_iova, len, shinfo);
	/* The attached buffer is exactly the slice: all of it is data. */
	m->data_len = len;
	m->pkt_len = len;
	last->next = m;
	head->nb_segs++;
	head->pkt_len += len;
}

int zc_rte_mbuf_is_extbuf(const struct rte_mbuf *m)
{
	return RTE_MBUF_HAS_EXTBUF(m) ? 1 : 0;
}

unsigned zc_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
                                   unsigned n)
{
	return rte_ring_enqueue_burst(r, objs, n, NULL);
}

unsigned zc_rte_ring_dequeue_burst(struct rte_ring *r, void **objs,
                                   unsigned n)
{
	return rte_ring_dequeue_burst(r, objs, n, NULL);
}

unsigned zc_rte_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
