//! `linertt`, the vCPU placement probe of `ci/bench`: a bounded run reports
//! sane figures, and bad arguments fail with a message, not a hang.

use std::process::Command;

fn linertt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_linertt")).args(args).output().unwrap()
}

#[test]
fn bounces_a_line_between_two_cpus_and_reports_each_slice_in_order() {
    let t = std::time::Instant::now();
    let o = linertt(&["--cpus", "0,1", "--ms", "40", "--slice-ms", "10"]);
    // Bounded: 40 ms of slices, and an error a second past them at worst.
    assert!(t.elapsed() < std::time::Duration::from_secs(3), "{:?}", t.elapsed());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let line = out.lines().find_map(|l| l.strip_prefix("LINERTT ")).expect("a LINERTT line");
    let j: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(j["slices"], 4, "{j}");
    assert_eq!(j["cpus"], serde_json::json!([0, 1]), "{j}");
    let f = |k: &str| j[k].as_f64().unwrap();
    // A round trip between two CPUs takes at least a few ns, and less than
    // the second after which the probe gives up (with other tests busy on
    // the same CPUs one can take a scheduler slice of milliseconds).
    assert!(1.0 < f("min_ns") && f("min_ns") <= f("median_ns") && f("median_ns") <= f("max_ns"), "{j}");
    assert!(f("max_ns") < 1e9, "{j}");
    // Each slice in time order; the summary is their smallest, median
    // (mean of the middle two of four) and largest.
    let mut w: Vec<f64> = j["slice_ns"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(w.len(), 4, "{j}");
    w.sort_by(f64::total_cmp);
    let near = |x: f64, y: f64| (x - y).abs() <= 0.11;
    assert!(near(w[0], f("min_ns")) && near(w[3], f("max_ns")), "{j}");
    assert!(near((w[1] + w[2]) / 2.0, f("median_ns")), "{j}");
}

#[test]
fn refuses_one_cpu_twice_an_absent_cpu_and_bad_durations() {
    for (args, want) in [
        (&["--cpus", "1,1"][..], "must differ"),
        (&["--cpus", "0,4095"][..], "cannot pin a thread to CPU 4095"),
        (&["--cpus", "0"][..], "two CPU numbers"),
        (&["--ms", "5"][..], "--ms 5 must be between --slice-ms (10) and 60000"),
        (&["--ms", "60001"][..], "--ms 60001 must be between --slice-ms (10) and 60000"),
        (&["--slice-ms", "0"][..], "--slice-ms must be at least 1"),
    ] {
        let o = linertt(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
}
