//! The only module with `unsafe`: OpenSSL functions that the `openssl` crate does not bind.
//!
//! `unsafe_code` is allowed here, and only here, because RFC 7250 raw public keys (OpenSSL ≥ 3.2),
//! the DTLS retransmission timer (`DTLSv1_get_timeout` / `DTLSv1_handle_timeout`, which are
//! macros over `SSL_ctrl`), `DTLS_set_timer_cb` and `SSL_set_session` have no safe binding.
//! Every function below takes safe Rust references (`&SslRef`, `&mut SslContextBuilder`, ...),
//! whose lifetimes guarantee that the raw pointers handed to OpenSSL are valid for the call.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_long, c_uint, c_void};
use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::pkey::{PKey, PKeyRef, Public};
use openssl::ssl::{SslContextBuilder, SslRef, SslSessionRef};
use openssl::x509::X509StoreContextRef;
use openssl_sys::{EVP_PKEY, SSL, SSL_CTX, X509_STORE_CTX};

/// TLS certificate type "RawPublicKey" (RFC 7250, IANA TLS Certificate Types registry).
pub(crate) const CERT_TYPE_RPK: u8 = 2;
/// TLS certificate type "X509".
pub(crate) const CERT_TYPE_X509: u8 = 0;

const DTLS_CTRL_GET_TIMEOUT: c_int = 73;
const DTLS_CTRL_HANDLE_TIMEOUT: c_int = 74;

/// `DTLS_timer_cb` from `<openssl/ssl.h>`.
type DtlsTimerCb = unsafe extern "C" fn(ssl: *mut SSL, timer_us: c_uint) -> c_uint;

unsafe extern "C" {
    fn SSL_CTX_set1_server_cert_type(ctx: *mut SSL_CTX, val: *const u8, len: usize) -> c_int;
    fn SSL_CTX_set1_client_cert_type(ctx: *mut SSL_CTX, val: *const u8, len: usize) -> c_int;
    fn SSL_CTX_dane_enable(ctx: *mut SSL_CTX) -> c_int;
    fn SSL_dane_enable(ssl: *mut SSL, basedomain: *const std::ffi::c_char) -> c_int;
    fn SSL_add_expected_rpk(ssl: *mut SSL, rpk: *mut EVP_PKEY) -> c_int;
    fn SSL_get0_peer_rpk(ssl: *const SSL) -> *mut EVP_PKEY;
    fn SSL_get_negotiated_client_cert_type(ssl: *const SSL) -> c_int;
    fn SSL_get_negotiated_server_cert_type(ssl: *const SSL) -> c_int;
    fn X509_STORE_CTX_get0_rpk(ctx: *const X509_STORE_CTX) -> *mut EVP_PKEY;
    fn DTLS_set_timer_cb(ssl: *mut SSL, cb: DtlsTimerCb);
}

fn check(rc: c_int, what: &str) -> Result<(), String> {
    if rc == 1 {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            openssl::error::ErrorStack::get()
        ))
    }
}

/// Sets the certificate types this context offers for its own certificate (server_certificate_type
/// on a server, client_certificate_type on a client) and accepts from the peer.
pub(crate) fn set_cert_types(
    ctx: &mut SslContextBuilder,
    server: &[u8],
    client: &[u8],
) -> Result<(), String> {
    // SAFETY: `ctx.as_ptr()` is a live SSL_CTX owned by the builder borrowed mutably for the call;
    // the byte slices are valid for `len` bytes and OpenSSL copies them.
    unsafe {
        if !server.is_empty() {
            check(
                SSL_CTX_set1_server_cert_type(ctx.as_ptr(), server.as_ptr(), server.len()),
                "SSL_CTX_set1_server_cert_type",
            )?;
        }
        if !client.is_empty() {
            check(
                SSL_CTX_set1_client_cert_type(ctx.as_ptr(), client.as_ptr(), client.len()),
                "SSL_CTX_set1_client_cert_type",
            )?;
        }
    }
    Ok(())
}

/// Enables DANE on the context (required before `SSL_add_expected_rpk` on its connections).
pub(crate) fn ctx_dane_enable(ctx: &mut SslContextBuilder) -> Result<(), String> {
    // SAFETY: live SSL_CTX borrowed mutably; the call only initialises its DANE tables.
    check(
        unsafe { SSL_CTX_dane_enable(ctx.as_ptr()) },
        "SSL_CTX_dane_enable",
    )
}

/// Pins the peer's raw public keys on one connection: enables DANE without a base domain, then
/// adds each key as an expected RPK.
pub(crate) fn pin_rpks(ssl: &mut SslRef, keys: &[PKey<Public>]) -> Result<(), String> {
    // SAFETY: `ssl` is a live SSL borrowed mutably. A NULL base domain is allowed (no name
    // checks). `SSL_add_expected_rpk` only reads the key (it stores its own copy of the SPKI).
    unsafe {
        check(
            SSL_dane_enable(ssl.as_ptr(), std::ptr::null()),
            "SSL_dane_enable",
        )?;
        for key in keys {
            check(
                SSL_add_expected_rpk(ssl.as_ptr(), key.as_ptr()),
                "SSL_add_expected_rpk",
            )?;
        }
    }
    Ok(())
}

/// The peer's raw public key as DER SubjectPublicKeyInfo, if the peer sent one.
pub(crate) fn peer_rpk_der(ssl: &SslRef) -> Option<Vec<u8>> {
    // SAFETY: live SSL; the returned pointer is borrowed from the SSL (get0), valid while `ssl`
    // is borrowed, and only read here.
    unsafe {
        let key = SSL_get0_peer_rpk(ssl.as_ptr());
        if key.is_null() {
            return None;
        }
        PKeyRef::<Public>::from_ptr(key).public_key_to_der().ok()
    }
}

/// The raw public key being verified, as DER SPKI, when the verify callback runs for an RPK.
pub(crate) fn store_ctx_rpk_der(ctx: &X509StoreContextRef) -> Option<Vec<u8>> {
    // SAFETY: live X509_STORE_CTX borrowed for the call; the key pointer is get0 (borrowed).
    unsafe {
        let key = X509_STORE_CTX_get0_rpk(ctx.as_ptr());
        if key.is_null() {
            return None;
        }
        PKeyRef::<Public>::from_ptr(key).public_key_to_der().ok()
    }
}

/// Negotiated (server, client) certificate types: 0 = X.509, 2 = raw public key.
pub(crate) fn negotiated_cert_types(ssl: &SslRef) -> (i32, i32) {
    // SAFETY: plain getters on a live SSL.
    unsafe {
        (
            SSL_get_negotiated_server_cert_type(ssl.as_ptr()),
            SSL_get_negotiated_client_cert_type(ssl.as_ptr()),
        )
    }
}

/// `DTLSv1_get_timeout`: time left on OpenSSL's retransmission timer, if it runs.
pub(crate) fn dtls_get_timeout(ssl: &SslRef) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: DTLS_CTRL_GET_TIMEOUT writes one `struct timeval` through `parg`, which points to
    // our stack value for the duration of the call.
    let rc = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_GET_TIMEOUT,
            0,
            (&mut tv as *mut libc::timeval).cast::<c_void>(),
        )
    };
    if rc == 1 {
        let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
        let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
        Some(Duration::from_secs(secs) + Duration::from_micros(u64::from(micros)))
    } else {
        None
    }
}

/// `DTLSv1_handle_timeout`: retransmits the last flight if OpenSSL's timer expired.
/// Returns >0 if it retransmitted, 0 if nothing was due, <0 on a fatal error.
///
/// Takes `&SslRef` because `SslStream` only lends a shared reference; the caller holds the
/// stream by `&mut`, so no other code touches this SSL during the call.
pub(crate) fn dtls_handle_timeout(ssl: &SslRef) -> c_long {
    // SAFETY: DTLS_CTRL_HANDLE_TIMEOUT takes no argument; the SSL is live and exclusively ours
    // for the call (see above). It may write records to the BIO, which is our in-memory pipe.
    unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_HANDLE_TIMEOUT,
            0,
            std::ptr::null_mut(),
        )
    }
}

/// Initial retransmission timeout for a connection, in microseconds; read by [`timer_cb`].
static TIMER_INITIAL_US: std::sync::OnceLock<openssl::ex_data::Index<openssl::ssl::Ssl, u32>> =
    std::sync::OnceLock::new();

fn timer_index() -> Option<openssl::ex_data::Index<openssl::ssl::Ssl, u32>> {
    if let Some(index) = TIMER_INITIAL_US.get() {
        return Some(*index);
    }
    let index = openssl::ssl::Ssl::new_ex_index::<u32>().ok()?;
    Some(*TIMER_INITIAL_US.get_or_init(|| index))
}

/// RFC 6347 §4.2.4.1 timer: start at the configured value, double on each expiry, cap at 60 s.
unsafe extern "C" fn timer_cb(ssl: *mut SSL, timer_us: c_uint) -> c_uint {
    if timer_us != 0 {
        return timer_us.saturating_mul(2).min(60_000_000);
    }
    // SAFETY: OpenSSL calls us with the live SSL whose timer starts; we only read its ex_data.
    let ssl = unsafe { SslRef::from_ptr(ssl) };
    timer_index()
        .and_then(|index| ssl.ex_data(index).copied())
        .unwrap_or(1_000_000)
}

/// Installs the retransmission timer policy with the given initial timeout.
pub(crate) fn set_retransmit_initial(ssl: &mut SslRef, initial: Duration) -> Result<(), String> {
    let index = timer_index().ok_or_else(|| "cannot allocate SSL ex_data index".to_owned())?;
    let us = u32::try_from(initial.as_micros())
        .unwrap_or(u32::MAX)
        .max(1);
    ssl.set_ex_data(index, us);
    // SAFETY: live SSL borrowed mutably; `timer_cb` is a plain function valid forever.
    unsafe { DTLS_set_timer_cb(ssl.as_ptr(), timer_cb) };
    Ok(())
}

/// `SSL_set_session` for resumption. The session must come from a connection made with the same
/// `SslContext`, which the caller (`Session::client`) guarantees by keeping the ticket in the
/// `ClientContext` that made it.
pub(crate) fn set_session(ssl: &mut SslRef, session: &SslSessionRef) -> Result<(), String> {
    // SAFETY: see above: same context, so OpenSSL's requirement on `SSL_set_session` holds.
    unsafe { ssl.set_session(session) }.map_err(|e| format!("SSL_set_session failed: {e}"))
}
