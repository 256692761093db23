//! libgpgme, loaded at run time (`dlopen("libgpgme.so.11")`, else
//! `libgpgme.so.45`) the first time key pinning reads a key, never before.
//!
//! Why not linked: a linked libgpgme would be a load-time dependency of the
//! binary on every host, although only hosts with `trusted-keys` use it;
//! its version-dependent symbols (`gpgme_op_keylist_from_data_start` is
//! not in RHEL 8's 1.13, nor in RHEL 7's 1.3) would stop the binary from
//! starting at all on older distributions; and cross-building for aarch64
//! would need the target's libgpgme to link against. Loaded, the binary
//! needs only libc and friends, runs where libgpgme is absent, and fails
//! with a message naming the library only when pinning is configured.
//!
//! Only functions present since gpgme 1.1 (2005) are used: the keys are
//! imported into a throw-away home directory and listed from there
//! (`gpgme_op_import` + `gpgme_op_keylist_*`), which also works with gpg
//! 2.0 (RHEL 7), where the "show-only" listing needs gpg 2.1.14. The
//! structures read (`_gpgme_key`, `_gpgme_subkey`, `_gpgme_user_id`) only
//! ever grew at their end since 1.0; the fields read here are the first ones.
//!
//! gpgme 2 (2025; soname `libgpgme.so.45`, the only one Debian forky
//! ships) removed the `gpgme_attr_t` and trust-list functions, none of them
//! used here, and kept every structure's leading fields as they were: its
//! `gpgme.h` differs only in `timestamp` and `expires`, now `unsigned long`
//! (the same size; read here as unsigned, 0 "never expires" in both).

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString};
use std::sync::OnceLock;

use nix::libc;

/// The sonames tried, in order: gpgme 1.x (every distribution from 2005
/// to 2025), then gpgme 2.x.
pub const SONAMES: [&str; 2] = ["libgpgme.so.11", "libgpgme.so.45"];

type GpgmeError = c_uint;
type Ctx = *mut c_void;
type Data = *mut c_void;

/// `GPG_ERR_EOF`: the end of a key listing.
const GPG_ERR_EOF: c_uint = 16383;
const GPGME_PROTOCOL_OPENPGP: c_int = 0;

#[repr(C)]
#[allow(dead_code)] // the C layout: every field up to the last one read
struct Subkey {
    next: *mut Subkey,
    /// Bit 0 revoked, 1 expired, 2 disabled, 3 invalid, 4 can_encrypt,
    /// 5 can_sign, ... (C bit-fields, allocated from the low bit on the
    /// little-endian ABIs of x86_64 and aarch64).
    flags: c_uint,
    pubkey_algo: c_int,
    length: c_uint,
    keyid: *mut c_char,
    keyid_buf: [c_char; 17],
    fpr: *mut c_char,
    /// `long` before gpgme 2, `unsigned long` since: the same size.
    timestamp: c_ulong,
    /// 0: never expires.
    expires: c_ulong,
}

#[repr(C)]
#[allow(dead_code)] // the C layout: every field up to the last one read
struct UserId {
    next: *mut UserId,
    flags: c_uint,
    validity: c_int,
    uid: *mut c_char,
}

#[repr(C)]
#[allow(dead_code)] // the C layout: every field up to the last one read
struct Key {
    refs: c_uint,
    /// Bit 0 revoked, like the subkey's.
    flags: c_uint,
    protocol: c_int,
    issuer_serial: *mut c_char,
    issuer_name: *mut c_char,
    chain_id: *mut c_char,
    owner_trust: c_int,
    subkeys: *mut Subkey,
    uids: *mut UserId,
}

const REVOKED: c_uint = 1 << 0;
const CAN_SIGN: c_uint = 1 << 5;

/// The functions used, resolved once.
struct Lib {
    soname: &'static str,
    version: String,
    new: unsafe extern "C" fn(*mut Ctx) -> GpgmeError,
    release: unsafe extern "C" fn(Ctx),
    set_protocol: unsafe extern "C" fn(Ctx, c_int) -> GpgmeError,
    ctx_set_engine_info:
        unsafe extern "C" fn(Ctx, c_int, *const c_char, *const c_char) -> GpgmeError,
    data_new_from_mem: unsafe extern "C" fn(*mut Data, *const c_char, usize, c_int) -> GpgmeError,
    data_release: unsafe extern "C" fn(Data),
    op_import: unsafe extern "C" fn(Ctx, Data) -> GpgmeError,
    op_keylist_start: unsafe extern "C" fn(Ctx, *const c_char, c_int) -> GpgmeError,
    op_keylist_next: unsafe extern "C" fn(Ctx, *mut *mut Key) -> GpgmeError,
    op_keylist_end: unsafe extern "C" fn(Ctx) -> GpgmeError,
    key_unref: unsafe extern "C" fn(*mut Key),
    strerror: unsafe extern "C" fn(GpgmeError) -> *const c_char,
}

fn dlerror() -> String {
    // SAFETY: dlerror returns a thread-local string or NULL.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: a NUL-terminated string owned by libdl.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// The first of [`SONAMES`] that loads, or why none did.
fn open() -> Result<(&'static str, *mut c_void), String> {
    let mut why = Vec::new();
    for soname in SONAMES {
        let name = CString::new(soname).expect("no NUL");
        // SAFETY: dlopen with a constant name; the handle is never closed.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !handle.is_null() {
            return Ok((soname, handle));
        }
        why.push(dlerror());
    }
    Err(format!(
        "key pinning (trusted-keys) needs libgpgme, {} (package libgpgme11t64, libgpgme11 or libgpgme45 on Debian and Ubuntu, gpgme on RHEL, Amazon Linux, Fedora and SUSE): {}",
        SONAMES.join(" or "),
        why.join("; ")
    ))
}

fn load() -> Result<Lib, String> {
    let (soname, handle) = open()?;
    macro_rules! sym {
        ($name:literal as $t:ty) => {{
            let n = CString::new($name).expect("no NUL");
            // SAFETY: looking up a symbol in a live handle.
            let p = unsafe { libc::dlsym(handle, n.as_ptr()) };
            if p.is_null() {
                return Err(format!("{soname} has no {}: {}", $name, dlerror()));
            }
            // SAFETY: the symbol is the gpgme function of that name, whose C
            // signature the field's type spells out (gpgme.h).
            unsafe { std::mem::transmute::<*mut c_void, $t>(p) }
        }};
    }
    let check_version =
        sym!("gpgme_check_version" as unsafe extern "C" fn(*const c_char) -> *const c_char);
    // SAFETY: must be called once before any other gpgme function; NULL
    // asks for no minimum.
    let v = unsafe { check_version(std::ptr::null()) };
    let version = if v.is_null() {
        "?".to_string()
    } else {
        // SAFETY: a static NUL-terminated string.
        unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned()
    };
    Ok(Lib {
        soname,
        version,
        new: sym!("gpgme_new" as unsafe extern "C" fn(*mut Ctx) -> GpgmeError),
        release: sym!("gpgme_release" as unsafe extern "C" fn(Ctx)),
        set_protocol: sym!("gpgme_set_protocol" as unsafe extern "C" fn(Ctx, c_int) -> GpgmeError),
        ctx_set_engine_info: sym!(
            "gpgme_ctx_set_engine_info"
                as unsafe extern "C" fn(Ctx, c_int, *const c_char, *const c_char) -> GpgmeError
        ),
        data_new_from_mem: sym!(
            "gpgme_data_new_from_mem"
                as unsafe extern "C" fn(*mut Data, *const c_char, usize, c_int) -> GpgmeError
        ),
        data_release: sym!("gpgme_data_release" as unsafe extern "C" fn(Data)),
        op_import: sym!("gpgme_op_import" as unsafe extern "C" fn(Ctx, Data) -> GpgmeError),
        op_keylist_start: sym!(
            "gpgme_op_keylist_start"
                as unsafe extern "C" fn(Ctx, *const c_char, c_int) -> GpgmeError
        ),
        op_keylist_next: sym!(
            "gpgme_op_keylist_next" as unsafe extern "C" fn(Ctx, *mut *mut Key) -> GpgmeError
        ),
        op_keylist_end: sym!("gpgme_op_keylist_end" as unsafe extern "C" fn(Ctx) -> GpgmeError),
        key_unref: sym!("gpgme_key_unref" as unsafe extern "C" fn(*mut Key)),
        strerror: sym!("gpgme_strerror" as unsafe extern "C" fn(GpgmeError) -> *const c_char),
    })
}

fn lib() -> Result<&'static Lib, String> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// The loaded library's soname and version, loading it if needed.
pub fn loaded() -> Result<(&'static str, String), String> {
    lib().map(|l| (l.soname, l.version.clone()))
}

impl Lib {
    fn check(&self, what: &str, e: GpgmeError) -> Result<(), String> {
        if e == 0 {
            return Ok(());
        }
        // SAFETY: gpgme_strerror returns a static string.
        let s = unsafe { CStr::from_ptr((self.strerror)(e)) }
            .to_string_lossy()
            .into_owned();
        Err(format!("gpgme {}: {what}: {s}", self.version))
    }
}

/// A key as read: what [`super::key_info`] needs.
pub struct RawKey {
    pub fingerprint: Option<String>,
    pub uid: Option<String>,
    pub revoked: bool,
    /// The primary key first.
    pub subkeys: Vec<RawSubkey>,
}

pub struct RawSubkey {
    pub revoked: bool,
    pub can_sign: bool,
    /// Unix seconds; None: never expires.
    pub expires: Option<i64>,
}

fn string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: gpgme's NUL-terminated strings, alive with their key.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Releases the context and data on every path.
struct Guard<'a> {
    lib: &'a Lib,
    ctx: Ctx,
    data: Data,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // SAFETY: objects created by this lib, released once.
        unsafe {
            if !self.data.is_null() {
                (self.lib.data_release)(self.data);
            }
            if !self.ctx.is_null() {
                (self.lib.release)(self.ctx);
            }
        }
    }
}

/// Every public key in `bytes` (armored or binary, one or many blocks),
/// imported into the empty gpg home `home` and listed from there.
pub fn read_keys(bytes: &[u8], home: &std::path::Path) -> Result<Vec<RawKey>, String> {
    let lib = lib()?;
    let home = CString::new(home.as_os_str().as_encoded_bytes())
        .map_err(|_| "the temporary gpg home has a NUL in its path".to_string())?;
    let mut g = Guard {
        lib,
        ctx: std::ptr::null_mut(),
        data: std::ptr::null_mut(),
    };
    // SAFETY: each call gets live objects of this library, per gpgme.h.
    unsafe {
        lib.check("cannot run gpg", (lib.new)(&mut g.ctx))?;
        lib.check("OpenPGP", (lib.set_protocol)(g.ctx, GPGME_PROTOCOL_OPENPGP))?;
        lib.check(
            "cannot use a temporary gpg home",
            (lib.ctx_set_engine_info)(
                g.ctx,
                GPGME_PROTOCOL_OPENPGP,
                std::ptr::null(),
                home.as_ptr(),
            ),
        )?;
        lib.check(
            "data",
            (lib.data_new_from_mem)(&mut g.data, bytes.as_ptr().cast(), bytes.len(), 0),
        )?;
        // Data without any key is not an error here: it lists no key, and
        // the pin check refuses a keyring without the pinned key.
        let imported = (lib.op_import)(g.ctx, g.data);
        if imported != 0 && imported & 0xffff != 58
        /* GPG_ERR_NO_DATA */
        {
            lib.check("cannot read the keys", imported)?;
        }
        lib.check(
            "cannot list the keys",
            (lib.op_keylist_start)(g.ctx, std::ptr::null(), 0),
        )?;
        let mut out = Vec::new();
        loop {
            let mut key: *mut Key = std::ptr::null_mut();
            let e = (lib.op_keylist_next)(g.ctx, &mut key);
            if e & 0xffff == GPG_ERR_EOF {
                break;
            }
            if let Err(msg) = lib.check("cannot read a key", e) {
                let _ = (lib.op_keylist_end)(g.ctx);
                return Err(msg);
            }
            let k = &*key;
            let mut subkeys = Vec::new();
            let mut s = k.subkeys;
            while !s.is_null() {
                let sk = &*s;
                subkeys.push(RawSubkey {
                    revoked: sk.flags & REVOKED != 0,
                    can_sign: sk.flags & CAN_SIGN != 0,
                    expires: (sk.expires != 0)
                        .then(|| i64::try_from(sk.expires).unwrap_or(i64::MAX)),
                });
                s = sk.next;
            }
            let fingerprint = if k.subkeys.is_null() {
                None
            } else {
                string((*k.subkeys).fpr)
            };
            let uid = if k.uids.is_null() {
                None
            } else {
                string((*k.uids).uid)
            };
            out.push(RawKey {
                fingerprint,
                uid,
                revoked: k.flags & REVOKED != 0,
                subkeys,
            });
            (lib.key_unref)(key);
        }
        let _ = (lib.op_keylist_end)(g.ctx);
        Ok(out)
    }
}
