//! The case library: every case the rig knows, by id.
//!
//! Cases live in one module per ETS area (see `registration` for 101-104).
//! [`all`] lists them in id order; the engine selects from it with the suite
//! file's ids and globs.

use std::sync::LazyLock;

use crate::case::CaseDef;

pub mod bootstrap;
pub mod core_objects;
pub mod device_management;
pub mod fota;
pub mod machnation;
pub mod queue;
pub mod registration;
pub mod reporting;
pub mod security;

static ALL: LazyLock<Vec<CaseDef>> = LazyLock::new(|| {
    let mut all = Vec::new();
    all.extend(bootstrap::cases());
    all.extend(registration::cases());
    all.extend(queue::cases());
    all.extend(device_management::cases());
    all.extend(reporting::cases());
    all.extend(security::cases());
    all.extend(core_objects::cases());
    all.extend(fota::cases());
    all.extend(machnation::cases());
    all
});

/// Every case, in id order.
pub fn all() -> &'static [CaseDef] {
    &ALL
}

/// The case with this exact id.
pub fn find(id: &str) -> Option<&'static CaseDef> {
    all().iter().find(|c| c.meta.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_named_by_ets_id() {
        let mut ids: Vec<_> = all().iter().map(|c| c.meta.id).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate case ids");
        for id in ids {
            assert!(
                id.starts_with("LightweightM2M-1.1-int-")
                    || id.starts_with("fota.")
                    || id.starts_with("machnation."),
                "{id}"
            );
        }
    }

    #[test]
    fn the_newer_bootstrap_registration_and_queue_cases_are_listed_with_a_reading() {
        for n in [1, 2, 6, 7, 105, 106, 107, 108, 109] {
            let id = format!("LightweightM2M-1.1-int-{n}");
            let case = find(&id).unwrap_or_else(|| panic!("{id} missing"));
            assert!(case.meta.reading.is_some(), "{id} states no reading");
        }
    }

    #[test]
    fn registration_cases_are_listed() {
        for n in [101, 102, 103, 104] {
            let id = format!("LightweightM2M-1.1-int-{n}");
            let case = find(&id).unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(case.meta.requires, &["lwm2m"]);
            assert!(!case.meta.title.is_empty());
        }
    }
}
