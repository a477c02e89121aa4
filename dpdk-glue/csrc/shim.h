/* zcstack C shim: exported wrappers for DPDK's static inline functions and
 * macros, so Rust can call them. Every wrapper is a one-line forward with the
 * same contract as the DPDK function it wraps. */
#ifndef ZC_SHIM_H
#define ZC_SHIM_H

#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_memory.h>
#include <rte_memzone.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_ring.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_bus.h>
#include <rte_vfio.h>
#include <rte_ether.h>

/* DPDK defines offload flags with RTE_BIT64(), which bindgen cannot
 * evaluate; an enum of the same values can be. All fit in an int. */
enum zc_offload_bits {
	ZC_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM,
	ZC_RX_OFFLOAD_UDP_CKSUM = RTE_ETH_RX_OFFLOAD_UDP_CKSUM,
	ZC_RX_OFFLOAD_TCP_CKSUM = RTE_ETH_RX_OFFLOAD_TCP_CKSUM,
	ZC_RX_OFFLOAD_SCATTER = RTE_ETH_RX_OFFLOAD_SCATTER,
	ZC_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM,
	ZC_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM,
	ZC_TX_OFFLOAD_TCP_CKSUM = RTE_ETH_TX_OFFLOAD_TCP_CKSUM,
	ZC_TX_OFFLOAD_TCP_TSO = RTE_ETH_TX_OFFLOAD_TCP_TSO,
	ZC_TX_OFFLOAD_MULTI_SEGS = RTE_ETH_TX_OFFLOAD_MULTI_SEGS,
	ZC_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE,
};

/* RSS hash types (RTE_ETH_RSS_*, RTE_BIT64 too); the IPv4 ones fit an int. */
enum zc_rss_bits {
	ZC_RSS_IPV4 = RTE_ETH_RSS_IPV4,
	ZC_RSS_FRAG_IPV4 = RTE_ETH_RSS_FRAG_IPV4,
	ZC_RSS_NONFRAG_IPV4_TCP = RTE_ETH_RSS_NONFRAG_IPV4_TCP,
	ZC_RSS_NONFRAG_IPV4_UDP = RTE_ETH_RSS_NONFRAG_IPV4_UDP,
	ZC_RSS_NONFRAG_IPV4_OTHER = RTE_ETH_RSS_NONFRAG_IPV4_OTHER,
	ZC_RETA_GROUP_SIZE = RTE_ETH_RETA_GROUP_SIZE,
};

/* rte_ring's burst calls are static inline. */
unsigned zc_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
                                   unsigned n);
unsigned zc_rte_ring_dequeue_burst(struct rte_ring *r, void **objs,
                                   unsigned n);
unsigned zc_rte_ring_count(const struct rte_ring *r);

/* rte_errno is a per-lcore TLS variable: read it through a function. */
int zc_rte_errno(void);
void zc_rte_errno_set(int v);
unsigned zc_rte_lcore_id(void);
uint64_t zc_rte_rdtsc(void);
void zc_rte_pause(void);

/* rte_eth_rx_burst/rte_eth_tx_burst are mirrored in Rust (port.rs) over
 * rte_eth_fp_ops, to keep the per-burst path free of an extra call. */

struct rte_mbuf *zc_rte_pktmbuf_alloc(struct rte_mempool *mp);
int zc_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                              unsigned count);
/* rte_mempool_get_bulk on a pktmbuf pool, as rte_mbuf_raw_alloc does for one:
 * the mbufs come out as the pool keeps them (refcnt 1, one segment, next
 * NULL), not reset; 0 on success, all or nothing. */
int zc_rte_mbuf_raw_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                               unsigned count);
/* rte_pktmbuf_reset (the reference Mbuf::reset is tested against). */
void zc_rte_pktmbuf_reset(struct rte_mbuf *m);
void zc_rte_pktmbuf_free(struct rte_mbuf *m);
char *zc_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *zc_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int zc_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
int zc_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);
uint16_t zc_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t zc_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t zc_rte_pktmbuf_data_room_size(struct rte_mempool *mp);
uint16_t zc_rte_mbuf_refcnt_read(const struct rte_mbuf *m);

struct rte_mbuf_ext_shared_info *
zc_rte_pktmbuf_ext_shinfo_init_helper(void *buf_addr, uint16_t *buf_len,
                                      rte_mbuf_extbuf_free_callback_t free_cb,
                                      void *fcb_opaque);
/* Initialise a caller-owned shared-info (refcount 1) without carving it from
 * the buffer's tail, so the whole buffer stays payload. */
void zc_rte_ext_shinfo_init(struct rte_mbuf_ext_shared_info *shinfo,
                            rte_mbuf_extbuf_free_callback_t free_cb,
                            void *fcb_opaque);
void zc_rte_pktmbuf_attach_extbuf(struct rte_mbuf *m, void *buf_addr,
                                  rte_iova_t buf_iova, uint16_t buf_len,
                                  struct rte_mbuf_ext_shared_info *shinfo);
/* One call per zero-copy attachment: initialises the caller-owned shinfo
 * (refcount 1, free_cb(buf_addr, fcb_opaque) on release), attaches the fresh
 * unchained mbuf m to [buf_addr, +len) as an external buffer whose data is
 * all len bytes, and links it after `last`, the last segment of the chain
 * headed by `head` (nb_segs and pkt_len of head grow). No chain walk. */
void zc_attach_ext_tail(struct rte_mbuf *head, struct rte_mbuf *last,
                        struct rte_mbuf *m, void *buf_addr, rte_iova_t buf_iova,
                        uint16_t len, struct rte_mbuf_ext_shared_info *shinfo,
                        rte_mbuf_extbuf_free_callback_t free_cb,
                        void *fcb_opaque);
int zc_rte_mbuf_is_extbuf(const struct rte_mbuf *m);

#endif
