//! Properties of the file readers: no input makes them panic, escaped text
//! survives a template round trip, and positions stay inside the file.

use proptest::prelude::*;
use rig_bench::diag::SourceFile;
use rig_bench::file::Bench;
use rig_bench::profile::Profile;
use rig_bench::template::Template;

/// TOML-ish text: fragments of real bench files glued at random, so the
/// parser gets past the syntax check often enough to exercise the schema walk.
fn tomlish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "[bench]\n",
        "[target]\n",
        "[network]\n",
        "[power]\n",
        "[timeouts]\n",
        "[profile]\n",
        "[actions.reboot]\n",
        "name = \"x\"\n",
        "kind = \"sim\"\n",
        "kind = \"process\"\n",
        "kind = \"nic\"\n",
        "kind = \"ina219\"\n",
        "command = [\"a\", \"{endpoint}\"]\n",
        "command = \"x\"\n",
        "send = \"{0} {x}\"\n",
        "address = 0x40\n",
        "address = -1\n",
        "impair = true\n",
        "start_s = 1e400\n",
        "case_scale = 0\n",
        "features = [1, \"a\"]\n",
        "console = { port = \"/dev/ttyS0\" }\n",
        "x = { y = { z = 1 } }\n",
        "\"é\" = 1\n",
        "= broken\n",
        "profile = \"missing.toml\"\n",
        "interface = \"\"\n",
    ]);
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn readers_never_panic_on_toml_fragments(text in tomlish()) {
        let src = SourceFile::new("/nonexistent/p.toml", text);
        let _ = Bench::parse(&src).map_err(|d| d.to_string());
        let _ = Profile::parse(&src).map_err(|d| d.to_string());
    }

    #[test]
    fn readers_never_panic_on_arbitrary_text(text in ".{0,200}") {
        let src = SourceFile::new("/nonexistent/p.toml", text);
        if let Err(d) = Bench::parse(&src) {
            prop_assert!(!d.is_empty());
            let _ = d.to_string();
        }
    }

    #[test]
    fn escaped_text_round_trips(text in ".{0,64}") {
        let escaped = text.replace('{', "{{").replace('}', "}}");
        let t = Template::parse(&escaped, true).unwrap();
        prop_assert_eq!(t.arity(), 0);
        prop_assert_eq!(t.render(&Default::default(), &[]).unwrap(), text);
    }

    #[test]
    fn template_parsing_never_panics(text in "[a-z{}0-9_ ]{0,32}") {
        let _ = Template::parse(&text, true);
        let _ = Template::parse(&text, false);
    }

    #[test]
    fn positions_are_within_the_text(text in "(.|\n){0,100}", offset in 0usize..200) {
        let src = SourceFile::new("x", text.clone());
        let (line, column) = src.position(offset);
        prop_assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
        prop_assert!(column >= 1);
    }
}
