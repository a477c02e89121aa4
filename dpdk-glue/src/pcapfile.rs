//! `[pcap]` files: `<savepath>/cpu<lcore>_<seq>.pcap`, rotated through ten
//! files of at most `savelen` bytes each, as F-Stack names them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use zcstack::phy::pcap::{file_header, PcapSink};

/// Rotating pcap files for one lcore.
#[derive(Debug)]
pub struct PcapFiles {
    dir: PathBuf,
    lcore: u32,
    seq: u32,
    savelen: u64,
    snaplen: u32,
    written: u64,
    file: BufWriter<File>,
    /// Records written.
    pub records: u64,
    /// Records lost to I/O errors.
    pub errors: u64,
}

/// Files kept per lcore before the oldest is reused.
const FILES: u32 = 10;

impl PcapFiles {
    /// Opens `cpu<lcore>_0.pcap` in `dir`.
    pub fn create(dir: &str, lcore: u32, savelen: u64, snaplen: u32) -> std::io::Result<PcapFiles> {
        let dir = PathBuf::from(dir);
        let file = Self::open(&dir, lcore, 0, snaplen)?;
        Ok(PcapFiles { dir, lcore, seq: 0, savelen, snaplen, written: 24, file, records: 0, errors: 0 })
    }

    /// The file being written.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(format!("cpu{}_{}.pcap", self.lcore, self.seq))
    }

    fn open(dir: &std::path::Path, lcore: u32, seq: u32, snaplen: u32) -> std::io::Result<BufWriter<File>> {
        let mut f = BufWriter::new(File::create(dir.join(format!("cpu{lcore}_{seq}.pcap")))?);
        f.write_all(&file_header(snaplen))?;
        Ok(f)
    }

    /// Writes buffered records out.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl PcapSink for PcapFiles {
    fn write_record(&mut self, record: &[u8]) -> std::io::Result<()> {
        if self.written + record.len() as u64 > self.savelen && self.written > 24 {
            self.file.flush()?;
            self.seq = (self.seq + 1) % FILES;
            self.file = Self::open(&self.dir, self.lcore, self.seq, self.snaplen)?;
            self.written = 24;
        }
        match self.file.write_all(record) {
            Ok(()) => {
                self.written += record.len() as u64;
                self.records += 1;
                Ok(())
            }
            Err(e) => {
                self.errors += 1;
                Err(e)
            }
        }
    }
}
