//! Pinning the calling thread to one CPU (`sched_setaffinity`), for tools
//! that place their own threads outside the EAL's lcores (`linertt`).

/// Pins the calling thread to CPU `cpu`.
///
/// # Errors
/// `InvalidInput` when `cpu` is past the largest CPU set (`CPU_SETSIZE`,
/// 1,024); otherwise the kernel's: `EINVAL` when the CPU is offline,
/// absent or outside this process's cgroup cpuset.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    let bits = 8 * std::mem::size_of::<libc::cpu_set_t>();
    if cpu >= bits {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is past the largest CPU set ({bits} CPUs)"),
        ));
    }
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below the set's bit size (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the size and pointer describe
    // `set`, which lives across the call.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pins_to_an_allowed_cpu_and_refuses_an_absent_one() {
        // A thread of its own, so the test harness's threads keep their mask.
        std::thread::spawn(|| {
            super::pin_current_thread(0).expect("CPU 0 exists on every test machine");
            let e = super::pin_current_thread(1 << 20).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
            let e = super::pin_current_thread(1023).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        })
        .join()
        .unwrap();
    }
}
