//! The Firmware Update object (Object 5, LwM2M 1.1 TS Appendix E.6 and the
//! OMA registry's `5.xml` v1.1) as a state machine: resource /5/0/3 State
//! and /5/0/5 Update Result, with every transition the object defines.
//!
//! The machine checks operations the server performs (Write Package, Write
//! Package URI, Execute Update) and events the device reports (download
//! finished or failed, update finished or failed). Operations not allowed in
//! the current state return a [`FotaError`] carrying the CoAP code the client
//! must answer with (e.g. Execute Update outside Downloaded → 4.05).
//!
//! ```text
//!            write package / URI            download ok
//!   Idle ───────────────────────► Downloading ───────────► Downloaded
//!    ▲  ◄── download failed (2-7, 9) ──┘   ◄─ empty URI (10)  │  │
//!    │  ◄────────────── write empty package/URI ──────────────┘  │ Execute Update
//!    │                                                            ▼
//!    └──────── update ok (1) / failed (8, image dropped) ──── Updating
//!                                   update failed (8, image kept) → Downloaded
//! ```

use core::fmt;

use coap_lite::ResponseType;

/// /5/0/3 State.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareState {
    /// 0: Idle (before downloading or after a successful update).
    Idle = 0,
    /// 1: Downloading.
    Downloading = 1,
    /// 2: Downloaded.
    Downloaded = 2,
    /// 3: Updating.
    Updating = 3,
}

/// /5/0/5 Update Result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateResult {
    /// 0: Initial value; reset when a download starts.
    Initial = 0,
    /// 1: Firmware updated successfully.
    Success = 1,
    /// 2: Not enough flash memory for the new firmware package.
    NotEnoughFlash = 2,
    /// 3: Out of RAM during downloading.
    OutOfRam = 3,
    /// 4: Connection lost during downloading.
    ConnectionLost = 4,
    /// 5: Integrity check failure for the new package.
    IntegrityCheckFailure = 5,
    /// 6: Unsupported package type.
    UnsupportedPackageType = 6,
    /// 7: Invalid URI.
    InvalidUri = 7,
    /// 8: Firmware update failed.
    UpdateFailed = 8,
    /// 9: Unsupported protocol.
    UnsupportedProtocol = 9,
    /// 10: Firmware update cancelled (LwM2M 1.1).
    Cancelled = 10,
    /// 11: Firmware update deferred (LwM2M 1.1).
    Deferred = 11,
}

impl FirmwareState {
    /// The resource value.
    pub fn as_i64(self) -> i64 {
        self as i64
    }

    /// Parses the resource value.
    pub fn from_i64(v: i64) -> Option<FirmwareState> {
        Some(match v {
            0 => FirmwareState::Idle,
            1 => FirmwareState::Downloading,
            2 => FirmwareState::Downloaded,
            3 => FirmwareState::Updating,
            _ => return None,
        })
    }
}

impl UpdateResult {
    /// The resource value.
    pub fn as_i64(self) -> i64 {
        self as i64
    }

    /// Parses the resource value.
    pub fn from_i64(v: i64) -> Option<UpdateResult> {
        use UpdateResult::*;
        Some(match v {
            0 => Initial,
            1 => Success,
            2 => NotEnoughFlash,
            3 => OutOfRam,
            4 => ConnectionLost,
            5 => IntegrityCheckFailure,
            6 => UnsupportedPackageType,
            7 => InvalidUri,
            8 => UpdateFailed,
            9 => UnsupportedProtocol,
            10 => Cancelled,
            11 => Deferred,
            _ => return None,
        })
    }

    /// True for the results a failed download may end with.
    pub fn is_download_failure(self) -> bool {
        use UpdateResult::*;
        matches!(
            self,
            NotEnoughFlash
                | OutOfRam
                | ConnectionLost
                | IntegrityCheckFailure
                | UnsupportedPackageType
                | InvalidUri
                | UnsupportedProtocol
        )
    }
}

/// An operation or event not allowed in the current state.
#[derive(Debug, Clone, PartialEq)]
pub struct FotaError {
    /// The CoAP response code the client answers with (4.05 or 4.00).
    pub code: ResponseType,
    /// The state the object was in.
    pub state: FirmwareState,
    /// What was attempted.
    pub attempted: &'static str,
}

impl fmt::Display for FotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not allowed in state {:?} ({})",
            self.attempted,
            self.state,
            crate::coap::message::code_string(u8::from(coap_lite::MessageClass::Response(
                self.code
            )))
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FotaError {}

/// How the download is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Push: the server writes /5/0/0 Package.
    Push,
    /// Pull: the server writes /5/0/1 Package URI and the client downloads.
    Pull,
}

/// The Object 5 instance state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareUpdate {
    state: FirmwareState,
    result: UpdateResult,
    delivery: Option<Delivery>,
}

impl Default for FirmwareUpdate {
    fn default() -> Self {
        Self::new()
    }
}

impl FirmwareUpdate {
    /// Idle, result 0.
    pub fn new() -> FirmwareUpdate {
        FirmwareUpdate {
            state: FirmwareState::Idle,
            result: UpdateResult::Initial,
            delivery: None,
        }
    }

    /// Restores a persisted state (for resume after restart); Updating
    /// after a restart means the update ran: the caller reports its outcome.
    pub fn restore(state: FirmwareState, result: UpdateResult) -> FirmwareUpdate {
        FirmwareUpdate {
            state,
            result,
            delivery: None,
        }
    }

    /// /5/0/3.
    pub fn state(&self) -> FirmwareState {
        self.state
    }

    /// /5/0/5.
    pub fn result(&self) -> UpdateResult {
        self.result
    }

    /// How the current download was started.
    pub fn delivery(&self) -> Option<Delivery> {
        self.delivery
    }

    fn err(&self, code: ResponseType, attempted: &'static str) -> FotaError {
        FotaError {
            code,
            state: self.state,
            attempted,
        }
    }

    /// Server writes /5/0/0 Package (push). Empty = cancel/reset.
    /// Non-empty in Idle starts the download (the write itself is the
    /// download): state Downloading. Non-empty elsewhere → 4.05.
    pub fn write_package(&mut self, empty: bool) -> Result<(), FotaError> {
        self.write(empty, Delivery::Push, "Write /5/0/0 Package")
    }

    /// Server writes /5/0/1 Package URI (pull). Empty = cancel/reset.
    pub fn write_package_uri(&mut self, empty: bool) -> Result<(), FotaError> {
        self.write(empty, Delivery::Pull, "Write /5/0/1 Package URI")
    }

    fn write(&mut self, empty: bool, how: Delivery, what: &'static str) -> Result<(), FotaError> {
        match (self.state, empty) {
            (FirmwareState::Idle, false) => {
                self.state = FirmwareState::Downloading;
                self.result = UpdateResult::Initial;
                self.delivery = Some(how);
                Ok(())
            }
            (FirmwareState::Idle, true) => {
                self.result = UpdateResult::Initial;
                Ok(())
            }
            // Cancelling a download in progress (1.1: result 10).
            (FirmwareState::Downloading, true) => {
                self.state = FirmwareState::Idle;
                self.result = UpdateResult::Cancelled;
                self.delivery = None;
                Ok(())
            }
            // Dropping a downloaded image.
            (FirmwareState::Downloaded, true) => {
                self.state = FirmwareState::Idle;
                self.result = UpdateResult::Initial;
                self.delivery = None;
                Ok(())
            }
            (FirmwareState::Updating, _) => Err(self.err(ResponseType::MethodNotAllowed, what)),
            (_, false) => Err(self.err(ResponseType::MethodNotAllowed, what)),
        }
    }

    /// The device finished downloading and the package passed its checks.
    pub fn download_complete(&mut self) -> Result<(), FotaError> {
        if self.state != FirmwareState::Downloading {
            return Err(self.err(ResponseType::BadRequest, "download complete"));
        }
        self.state = FirmwareState::Downloaded;
        Ok(())
    }

    /// The download failed with `why` (2-7 or 9).
    pub fn download_failed(&mut self, why: UpdateResult) -> Result<(), FotaError> {
        if self.state != FirmwareState::Downloading {
            return Err(self.err(ResponseType::BadRequest, "download failed"));
        }
        if !why.is_download_failure() {
            return Err(self.err(
                ResponseType::BadRequest,
                "download failed with a non-download result",
            ));
        }
        self.state = FirmwareState::Idle;
        self.result = why;
        self.delivery = None;
        Ok(())
    }

    /// Server executes /5/0/2 Update: allowed only in Downloaded.
    pub fn execute_update(&mut self) -> Result<(), FotaError> {
        if self.state != FirmwareState::Downloaded {
            return Err(self.err(ResponseType::MethodNotAllowed, "Execute /5/0/2 Update"));
        }
        self.state = FirmwareState::Updating;
        Ok(())
    }

    /// The device defers the update (1.1, result 11): stays Downloaded.
    pub fn defer_update(&mut self) -> Result<(), FotaError> {
        if !matches!(
            self.state,
            FirmwareState::Downloaded | FirmwareState::Updating
        ) {
            return Err(self.err(ResponseType::BadRequest, "defer update"));
        }
        self.state = FirmwareState::Downloaded;
        self.result = UpdateResult::Deferred;
        Ok(())
    }

    /// The new firmware runs: Idle, result 1.
    pub fn update_succeeded(&mut self) -> Result<(), FotaError> {
        if self.state != FirmwareState::Updating {
            return Err(self.err(ResponseType::BadRequest, "update succeeded"));
        }
        self.state = FirmwareState::Idle;
        self.result = UpdateResult::Success;
        self.delivery = None;
        Ok(())
    }

    /// The update failed (result 8); the image is kept (back to Downloaded)
    /// or dropped (Idle).
    pub fn update_failed(&mut self, image_kept: bool) -> Result<(), FotaError> {
        if self.state != FirmwareState::Updating {
            return Err(self.err(ResponseType::BadRequest, "update failed"));
        }
        self.state = if image_kept {
            FirmwareState::Downloaded
        } else {
            FirmwareState::Idle
        };
        self.result = UpdateResult::UpdateFailed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_happy_path() {
        let mut f = FirmwareUpdate::new();
        f.write_package_uri(false).unwrap();
        assert_eq!(
            (f.state(), f.result()),
            (FirmwareState::Downloading, UpdateResult::Initial)
        );
        assert_eq!(f.delivery(), Some(Delivery::Pull));
        f.download_complete().unwrap();
        assert_eq!(f.state(), FirmwareState::Downloaded);
        f.execute_update().unwrap();
        assert_eq!(f.state(), FirmwareState::Updating);
        f.update_succeeded().unwrap();
        assert_eq!(
            (f.state(), f.result()),
            (FirmwareState::Idle, UpdateResult::Success)
        );
        // A new download resets the result to 0.
        f.write_package(false).unwrap();
        assert_eq!(f.result(), UpdateResult::Initial);
    }

    #[test]
    fn execute_update_outside_downloaded_is_4_05() {
        let mut f = FirmwareUpdate::new();
        let e = f.execute_update().unwrap_err();
        assert_eq!(e.code, ResponseType::MethodNotAllowed);
        assert_eq!(e.state, FirmwareState::Idle);
        assert!(e.to_string().contains("4.05"), "{e}");
        f.write_package(false).unwrap();
        assert_eq!(
            f.execute_update().unwrap_err().state,
            FirmwareState::Downloading
        );
        // Writing a second package while downloading is refused.
        assert_eq!(
            f.write_package(false).unwrap_err().code,
            ResponseType::MethodNotAllowed
        );
    }

    #[test]
    fn failures_cancel_and_defer() {
        let mut f = FirmwareUpdate::new();
        f.write_package_uri(false).unwrap();
        f.download_failed(UpdateResult::IntegrityCheckFailure)
            .unwrap();
        assert_eq!(
            (f.state(), f.result()),
            (FirmwareState::Idle, UpdateResult::IntegrityCheckFailure)
        );
        f.write_package_uri(false).unwrap();
        assert!(f.download_failed(UpdateResult::Success).is_err());
        f.write_package_uri(true).unwrap();
        assert_eq!(
            (f.state(), f.result()),
            (FirmwareState::Idle, UpdateResult::Cancelled)
        );
        f.write_package_uri(false).unwrap();
        f.download_complete().unwrap();
        f.defer_update().unwrap();
        assert_eq!(
            (f.state(), f.result()),
            (FirmwareState::Downloaded, UpdateResult::Deferred)
        );
        f.execute_update().unwrap();
        f.update_failed(true).unwrap();
        assert_eq!(
            (f.state(), f.result()),
            (FirmwareState::Downloaded, UpdateResult::UpdateFailed)
        );
        f.execute_update().unwrap();
        f.update_failed(false).unwrap();
        assert_eq!(f.state(), FirmwareState::Idle);
        f.write_package(false).unwrap();
        f.download_complete().unwrap();
        f.write_package(true).unwrap();
        assert_eq!(
            (f.state(), f.result()),
            (FirmwareState::Idle, UpdateResult::Initial)
        );
    }

    #[test]
    fn resource_values_round_trip() {
        for v in 0..4 {
            assert_eq!(FirmwareState::from_i64(v).unwrap().as_i64(), v);
        }
        for v in 0..12 {
            assert_eq!(UpdateResult::from_i64(v).unwrap().as_i64(), v);
        }
        assert_eq!(FirmwareState::from_i64(4), None);
        assert_eq!(UpdateResult::from_i64(12), None);
    }
}
