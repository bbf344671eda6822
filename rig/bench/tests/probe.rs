//! The probe-rs target without hardware: chip lookup in probe-rs's real
//! database, firmware-fit checks on ELF/HEX/BIN files written here, probe
//! selection rules, and the download path as far as the first USB access
//! (no probe is attached on CI machines).

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use rig_bench::BenchError;
use rig_bench::probe::{
    FirmwareFormat, FlashJob, ProbeInfo, check_fit, flash, list_probes, lookup_chip, select_probe,
};

const CHIP: &str = "nRF52840_xxAA"; // flash 0x0..0x100000, RAM 0x20000000..0x20040000

/// A minimal little-endian ELF32 (ARM) with one PT_LOAD per
/// `(paddr, vaddr, file bytes, memsz)`.
fn elf32(segments: &[(u32, u32, u32, u32)]) -> Vec<u8> {
    let ehsize = 52u32;
    let phentsize = 32u32;
    let data_start = ehsize + phentsize * segments.len() as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[1, 1, 1, 0]); // 32-bit, little endian, version 1, SysV
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&40u16.to_le_bytes()); // EM_ARM
    out.extend_from_slice(&1u32.to_le_bytes()); // version
    out.extend_from_slice(&segments.first().map_or(0, |s| s.1).to_le_bytes()); // entry
    out.extend_from_slice(&ehsize.to_le_bytes()); // phoff
    out.extend_from_slice(&0u32.to_le_bytes()); // shoff
    out.extend_from_slice(&0x0500_0000u32.to_le_bytes()); // flags (EABI5)
    out.extend_from_slice(&(ehsize as u16).to_le_bytes());
    out.extend_from_slice(&(phentsize as u16).to_le_bytes());
    out.extend_from_slice(&(segments.len() as u16).to_le_bytes());
    out.extend_from_slice(&40u16.to_le_bytes()); // shentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // shnum
    out.extend_from_slice(&0u16.to_le_bytes()); // shstrndx
    let mut offset = data_start;
    for &(paddr, vaddr, filesz, memsz) in segments {
        for v in [1u32, offset, vaddr, paddr, filesz, memsz, 5, 4] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        offset += filesz;
    }
    for &(_, _, filesz, _) in segments {
        out.extend((0..filesz).map(|i| i as u8));
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn hex(records: &[ihex::Record]) -> Vec<u8> {
    ihex::create_object_file_representation(records)
        .unwrap()
        .into_bytes()
}

#[test]
fn chips_are_found_and_a_wrong_name_gets_a_suggestion() {
    let t = lookup_chip(CHIP).unwrap();
    assert_eq!(t.name, CHIP);
    let e = lookup_chip("nRF52840_xxAB").unwrap_err().to_string();
    assert!(e.contains("unknown chip \"nRF52840_xxAB\""), "{e}");
    assert!(e.contains("did you mean \"nRF52840_xxAA\"?"), "{e}");
    let e = lookup_chip("STM32F411REX").unwrap_err().to_string();
    assert!(e.contains("STM32F411RE"), "{e}");
    let e = lookup_chip("qqqq").unwrap_err().to_string();
    assert!(e.contains("probe-rs chip list"), "{e}");
}

#[test]
fn an_elf_with_flash_data_and_bss_fits_and_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let t = lookup_chip(CHIP).unwrap();
    let fw = write(
        dir.path(),
        "app.elf",
        &elf32(&[
            (0x0, 0x0, 1024, 1024),              // .text
            (0x400, 0x2000_0000, 64, 128),       // .data, loaded from flash
            (0x2000_0100, 0x2000_0100, 0, 1024), // .bss
        ]),
    );
    let (format, fit) = check_fit(&t, &fw, None).unwrap();
    assert_eq!(format, FirmwareFormat::Elf);
    assert_eq!(fit.flash_bytes, 1024 + 64);
    assert_eq!(fit.ram_bytes, 128 + 1024);
    assert_eq!(fit.flash_size, 0x10_0000 + 0x1000); // 1 MiB code flash + 4 KiB UICR
    assert_eq!(fit.ram_size, 0x4_0000);
}

#[test]
fn an_elf_past_the_end_of_flash_or_ram_is_refused_before_any_probe() {
    let dir = tempfile::tempdir().unwrap();
    let t = lookup_chip(CHIP).unwrap();
    let big = write(
        dir.path(),
        "big.elf",
        &elf32(&[(0xF_FF00, 0xF_FF00, 0x200, 0x200)]),
    );
    let e = check_fit(&t, &big, None).unwrap_err().to_string();
    assert!(
        e.contains("512 bytes at 0x000fff00..0x00100100 do not fit the flash of nRF52840_xxAA"),
        "{e}"
    );
    let ram = write(
        dir.path(),
        "ram.elf",
        &elf32(&[(0, 0, 16, 16), (0x2003_FF00, 0x2003_FF00, 0, 0x200)]),
    );
    let e = check_fit(&t, &ram, None).unwrap_err().to_string();
    assert!(
        e.contains("RAM segment at 0x2003ff00..0x20040100 is outside the RAM"),
        "{e}"
    );
    let junk = write(dir.path(), "junk.elf", b"\x7fELF\x01\x01");
    let e = check_fit(&t, &junk, None).unwrap_err().to_string();
    assert!(e.contains("not a valid ELF file"), "{e}");
}

#[test]
fn intel_hex_records_are_placed_with_their_extended_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let t = lookup_chip(CHIP).unwrap();
    let ok = write(
        dir.path(),
        "app.hex",
        &hex(&[
            ihex::Record::ExtendedLinearAddress(0x0000),
            ihex::Record::Data {
                offset: 0x1000,
                value: vec![0xAA; 16],
            },
            ihex::Record::EndOfFile,
        ]),
    );
    let (format, fit) = check_fit(&t, &ok, None).unwrap();
    assert_eq!(format, FirmwareFormat::Hex);
    assert_eq!(fit.flash_bytes, 16);
    let outside = write(
        dir.path(),
        "far.hex",
        &hex(&[
            ihex::Record::ExtendedLinearAddress(0x3000),
            ihex::Record::Data {
                offset: 0,
                value: vec![1, 2, 3, 4],
            },
            ihex::Record::EndOfFile,
        ]),
    );
    let e = check_fit(&t, &outside, None).unwrap_err().to_string();
    assert!(
        e.contains("4 bytes at 0x30000000..0x30000004 do not fit"),
        "{e}"
    );
    let broken = write(dir.path(), "broken.hex", b":10000000ZZ\n");
    let e = check_fit(&t, &broken, None).unwrap_err().to_string();
    assert!(e.contains("Intel HEX record 1"), "{e}");
}

#[test]
fn a_raw_binary_needs_a_base_address_and_must_fit_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let t = lookup_chip(CHIP).unwrap();
    let bin = write(dir.path(), "app.bin", &[0u8; 512]);
    let e = check_fit(&t, &bin, None).unwrap_err().to_string();
    assert!(e.contains("needs a base address"), "{e}");
    let (format, fit) = check_fit(&t, &bin, Some(0x1000)).unwrap();
    assert_eq!(format, FirmwareFormat::Bin { base: 0x1000 });
    assert_eq!(fit.flash_bytes, 512);
    assert!(check_fit(&t, &bin, Some(0xF_FF00)).is_err());
}

fn probe(vid: u16, pid: u16, serial: &str) -> ProbeInfo {
    ProbeInfo {
        identifier: "J-Link".into(),
        vendor_id: vid,
        product_id: pid,
        serial: Some(serial.into()),
        probe_type: "J-Link".into(),
    }
}

#[test]
fn probe_selection_never_guesses() {
    let e = select_probe(None, &[]).unwrap_err().to_string();
    assert!(e.starts_with("no debug probe found"), "{e}");
    let two = [
        probe(0x1366, 0x1015, "000683"),
        probe(0x1366, 0x1015, "000999"),
    ];
    let e = select_probe(None, &two).unwrap_err().to_string();
    assert!(e.contains("2 debug probes are attached"), "{e}");
    assert!(
        e.contains("1366:1015:000683") && e.contains("1366:1015:000999"),
        "{e}"
    );
    let e = select_probe(Some("1366:1015"), &two)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 probes match"), "{e}");
    assert_eq!(
        select_probe(Some("1366:1015:000999"), &two)
            .unwrap()
            .serial
            .as_deref(),
        Some("000999")
    );
    let e = select_probe(Some("0d28:0204:abc"), &two)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no debug probe matches target.probe = \"0d28:0204:abc\""),
        "{e}"
    );
    assert_eq!(select_probe(None, &two[..1]).unwrap(), two[0]);
}

#[test]
fn flashing_goes_as_far_as_the_first_usb_access() {
    let dir = tempfile::tempdir().unwrap();
    let fw = write(dir.path(), "app.elf", &elf32(&[(0, 0, 256, 256)]));
    let job = FlashJob {
        chip: CHIP.into(),
        probe: Some("1366:1015:000683".into()),
        firmware: fw,
        base_address: None,
        verify: true,
    };
    let attached = list_probes();
    if !attached.is_empty() {
        eprintln!("probes are attached here ({attached:?}); the no-probe path is not exercised");
        return;
    }
    let e = flash(&job, |_| {}).unwrap_err();
    assert!(matches!(e, BenchError::Probe(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("no debug probe found matching 1366:1015:000683"),
        "{text}"
    );
    // A bad chip or a bad image fails before that, without touching USB.
    let e = flash(
        &FlashJob {
            chip: "nRF52840_xxAB".into(),
            ..job.clone()
        },
        |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("did you mean"), "{e}");
}

#[tokio::test]
async fn a_probe_rs_bench_opens_as_a_dut_and_its_start_reports_the_missing_probe() {
    if !list_probes().is_empty() {
        eprintln!("probes are attached here; skipping the no-probe start");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fw.elf", &elf32(&[(0, 0, 256, 256)]));
    let bench_path = write(
        dir.path(),
        "bench.toml",
        format!("[bench]\nname = \"b\"\n[target]\nkind = \"probe-rs\"\nchip = \"{CHIP}\"\nfirmware = \"fw.elf\"\n")
            .as_bytes(),
    );
    let bench = rig_bench::file::Bench::load(&bench_path).unwrap();
    let mut dut = rig_bench::target::open(&bench, dir.path()).unwrap();
    assert_eq!(dut.identity()["chip"], CHIP);
    assert_eq!(dut.identity()["firmware_sha256"].len(), 64);
    let config = rig_bench::dut::DutConfig {
        endpoint: "ep".into(),
        server_uri: "coap://127.0.0.1:5683".into(),
        ssid: 1,
        lifetime_s: 60,
        binding: "U".into(),
        default_pmin_s: None,
        default_pmax_s: None,
        time_scale: 1.0,
        extra: Default::default(),
    };
    let e = dut.start(&config).await.unwrap_err().to_string();
    assert!(e.starts_with("no debug probe found"), "{e}");
    let log = std::fs::read_to_string(dir.path().join("console/dut.log")).unwrap();
    assert!(log.contains("flashing"), "{log}");
}
