//! Finds the system DPDK with pkg-config, generates allowlisted bindings with
//! bindgen, and compiles the C shim that exports DPDK's static inline functions.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=build.rs");

    // probe() also emits the cargo link directives for every DPDK library.
    match pkg_config::Config::new().atleast_version("22.11").probe("libdpdk") {
        Ok(_) => {}
        Err(e) => panic!(
            "dpdk-glue needs DPDK >= 22.11 found by pkg-config (libdpdk.pc): {e}\n\
             Install it with `ci/setup` (Debian: apt-get install --no-install-recommends \
             libdpdk-dev pkg-config clang libclang-dev)."
        ),
    }

    // pkg-config's cflags include `-include rte_config.h` and -march; hand the
    // exact same flags to clang (bindgen) and to cc (shim) so layouts agree.
    let mut clang_args: Vec<String> = Vec::new();
    let out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("run pkg-config --cflags libdpdk");
    let flags = String::from_utf8(out.stdout).expect("pkg-config output is UTF-8");
    let mut it = flags.split_whitespace().peekable();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                clang_args.push("-include".into());
                clang_args.push(h.into());
            }
        } else {
            clang_args.push(f.into());
        }
    }
    clang_args.push("-DALLOW_EXPERIMENTAL_API".into());

    let mut build = cc::Build::new();
    build.file("csrc/shim.c").define("ALLOW_EXPERIMENTAL_API", None).opt_level(3);
    for a in &clang_args {
        build.flag(a);
    }
    build.flag_if_supported("-Wno-unused-parameter");
    build.compile("zcshim");

    // The net_ring PMD's rte_eth_from_rings is not in pkg-config's --libs.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");
    // rte_vdev_init/uninit live in the vdev bus driver, also not listed.
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");

    let bindings = bindgen::Builder::default()
        .header("csrc/shim.h")
        .clang_args(&clang_args)
        .generate_comments(false)
        .layout_tests(true)
        .derive_default(true)
        .derive_debug(false)
        .prepend_enum_name(false)
        .allowlist_function("zc_.*")
        .allowlist_function("rte_log_(get_global_level|set_global_level)")
        .allowlist_function("rte_eal_(init|cleanup|iova_mode|process_type|remote_launch|wait_lcore|mp_wait_lcore|lcore_role)")
        .allowlist_function("rte_(get_main_lcore|strerror|socket_id|get_tsc_hz|lcore_count|lcore_to_socket_id|get_next_lcore|delay_us_block)")
        .allowlist_function("rte_(pktmbuf_pool_create|pktmbuf_free_bulk|mempool_free|mempool_avail_count|mempool_in_use_count|mempool_lookup)")
        .allowlist_function("rte_eth_(dev_count_avail|dev_get_port_by_name|dev_get_name_by_port|dev_info_get|dev_configure|rx_queue_setup|tx_queue_setup|dev_start|dev_stop|dev_close|dev_socket_id|dev_is_valid_port|dev_set_mtu|dev_get_mtu|dev_adjust_nb_rx_tx_desc)")
        .allowlist_function("rte_eth_(promiscuous_enable|promiscuous_disable|promiscuous_get|macaddr_get|link_get_nowait|stats_get|stats_reset|xstats_get|xstats_get_names|xstats_reset|from_rings|find_next_owned_by|dev_owner_.*)")
        // Burst fast path: the fp_ops table and the callback slow path, so the
        // inline rte_eth_{rx,tx}_burst can be mirrored in Rust without an FFI hop.
        .allowlist_var("rte_eth_fp_ops")
        .allowlist_function("rte_eth_call_(rx|tx)_callbacks")
        .allowlist_function("rte_(ring_create|ring_free|ring_lookup|vdev_init|vdev_uninit)")
        .allowlist_function("rte_eth_dev_(rss_reta_update|rss_hash_update)")
        .allowlist_function("rte_(memzone_reserve_aligned|memzone_free|memzone_lookup|mem_virt2iova|extmem_register|extmem_unregister|dev_dma_map|dev_dma_unmap|mem_virt2memseg_list)")
        // Device discovery, NUMA placement and IOVA/DMA decisions (ports.rs, extbuf.rs).
        .allowlist_function("rte_(dev_name|dev_bus|dev_numa_node|bus_name|vfio_is_enabled)")
        .allowlist_type("rte_mbuf|rte_mempool|rte_memzone|rte_mbuf_ext_shared_info|rte_eth_(conf|dev_info|stats|xstat|xstat_name|link|rxconf|txconf)|rte_ether_addr")
        .allowlist_type("zc_offload_bits|zc_rss_bits|rte_eth_rss_reta_entry64|rte_eth_rss_conf")
        .allowlist_var("ZC_.*|RTE_MEMZONE_.*|RTE_MAX_LCORE|RTE_MAX_ETHPORTS|RTE_ETH_LINK_.*|RTE_MBUF_DEFAULT_.*|RTE_PKTMBUF_HEADROOM|RTE_ETH_XSTATS_NAME_SIZE|RTE_ETHER_ADDR_LEN|SOCKET_ID_ANY|RTE_ETH_NAME_MAX_LEN|RTE_MBUF_F_.*|RTE_PTYPE_.*|RING_F_.*")
        .blocklist_type("rte_arp_(hdr|ipv4)")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed to generate DPDK bindings");

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR set by cargo"));
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");
}
