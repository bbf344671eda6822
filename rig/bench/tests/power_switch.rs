//! `target.power_switch`: a bench's switch runs through `Dut::power_cycle`,
//! its output lands in the console log, a failing switch is a clear error,
//! and the file schema rejects an ambiguous switch.

#![allow(clippy::unwrap_used, clippy::panic)] // test code: a failed unwrap is a failed test

use rig_bench::diag::SourceFile;
use rig_bench::file::{Bench, PowerSwitch};

fn bench(dir: &std::path::Path, switch: &str) -> Bench {
    let text = format!(
        "[bench]\nname = \"b\"\n[target]\nkind = \"process\"\ncommand = [\"sleep\", \"30\"]\npower_switch = {switch}\n"
    );
    let path = dir.join("b.toml");
    std::fs::write(&path, text).unwrap();
    Bench::load(&path).unwrap_or_else(|d| panic!("{d}"))
}

#[tokio::test]
async fn a_command_switch_runs_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("cycled");
    let b = bench(
        dir.path(),
        &format!(
            "{{ command = [\"sh\", \"-c\", \"echo relay off-on; touch {}\"] }}",
            marker.display()
        ),
    );
    let mut dut = rig_bench::target::open(&b, dir.path()).unwrap();
    dut.power_cycle().await.unwrap();
    assert!(marker.exists());
    let log = std::fs::read_to_string(dir.path().join("console/dut.log")).unwrap();
    assert!(log.contains("rig] power cycle: sh -c"), "{log}");
    assert!(log.contains("rig] power switch: relay off-on"), "{log}");
    assert!(log.contains("rig] power cycle done"), "{log}");
}

#[tokio::test]
async fn a_failing_switch_says_how_it_failed_and_no_switch_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let b = bench(
        dir.path(),
        "{ command = [\"sh\", \"-c\", \"echo no such outlet >&2; exit 3\"] }",
    );
    let mut dut = rig_bench::target::open(&b, dir.path()).unwrap();
    let e = dut.power_cycle().await.unwrap_err().to_string();
    assert!(e.contains("exit status: 3"), "{e}");
    assert!(e.contains("no such outlet"), "{e}");

    let path = dir.path().join("plain.toml");
    std::fs::write(
        &path,
        "[bench]\nname = \"b\"\n[target]\nkind = \"process\"\ncommand = [\"sleep\", \"30\"]\n",
    )
    .unwrap();
    let mut dut = rig_bench::target::open(&Bench::load(&path).unwrap(), dir.path()).unwrap();
    let e = dut.power_cycle().await.unwrap_err();
    assert!(matches!(e, rig_bench::BenchError::Unsupported(_)), "{e:?}");
}

#[test]
fn a_uhubctl_switch_cycles_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let b = bench(dir.path(), "{ uhubctl = { hub = \"1-1\", port = 2 } }");
    let s = b.target.power_switch.unwrap();
    assert_eq!(
        s,
        PowerSwitch::Uhubctl {
            hub: "1-1".into(),
            port: 2
        }
    );
    assert_eq!(
        rig_bench::switch::argv(&s).join(" "),
        "uhubctl -l 1-1 -p 2 -a cycle -d 2"
    );
}

#[test]
fn a_switch_with_both_or_neither_way_is_refused() {
    for switch in [
        "{ command = [\"x\"], uhubctl = { hub = \"1-1\", port = 2 } }",
        "{ }",
    ] {
        let text =
            format!("[bench]\nname = \"b\"\n[target]\nkind = \"sim\"\npower_switch = {switch}\n");
        let e = Bench::parse(&SourceFile::new("b.toml", text))
            .unwrap_err()
            .to_string();
        assert!(e.contains("target.power_switch"), "{e}");
        assert!(e.contains("exactly one of"), "{e}");
    }
}
