//! A tiny D-Bus client for systemd's manager: EXTERNAL auth, method calls with the few argument
//! types systemd's unit API needs, replies and signals read back. Hand-written (about what the
//! wire format needs) to keep the binary small; the marshalling is pure and unit-tested.
//!
//! libcgroups carries a client of its own, but keeps it private: husk uses it only through the
//! systemd manager, and talks to systemd directly here for what that manager does not do (the
//! scope's Description, a rootless caller's own scope).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Errors of the D-Bus client.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("connect to d-bus {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("d-bus {op}: {source}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("d-bus auth refused: {reply:?}")]
    Auth { reply: String },
    #[error("d-bus call {member}: {name}: {message}")]
    Call {
        member: String,
        name: String,
        message: String,
    },
    #[error("d-bus {op}: malformed message")]
    Malformed { op: &'static str },
}

/// One argument value, as systemd's StartTransientUnit/SetUnitProperties take them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    U32(u32),
    U64(u64),
    Str(String),
    ObjectPath(String),
    U32Array(Vec<u32>),
    /// `a(sv)`: unit properties.
    Props(Vec<(String, Value)>),
    /// `a(sa(sv))`: auxiliary units (always empty here).
    NoAux,
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Bool(_) => "b",
            Value::U32(_) => "u",
            Value::U64(_) => "t",
            Value::Str(_) => "s",
            Value::ObjectPath(_) => "o",
            Value::U32Array(_) => "au",
            Value::Props(_) => "a(sv)",
            Value::NoAux => "a(sa(sv))",
        }
    }
}

/// A little-endian D-Bus marshaller; offsets count from the start of the buffer, which must sit at
/// an 8-aligned offset of the message (the header and the body both do).
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// An array: length placeholder, padding to the element alignment, elements, length patched.
    fn array(&mut self, elem_align: usize, body: impl FnOnce(&mut Writer)) {
        self.pad(4);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.pad(elem_align);
        let start = self.buf.len();
        body(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::U32(n) => self.u32(*n),
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::Str(s) | Value::ObjectPath(s) => self.str(s),
            Value::U32Array(items) => self.array(4, |w| items.iter().for_each(|n| w.u32(*n))),
            Value::Props(props) => self.array(8, |w| {
                for (name, value) in props {
                    w.pad(8);
                    w.str(name);
                    w.variant(value);
                }
            }),
            Value::NoAux => self.array(8, |_| {}),
        }
    }

    fn variant(&mut self, v: &Value) {
        self.sig(v.signature());
        self.value(v);
    }
}

/// A method call's destination, object, interface and member.
pub struct Call<'a> {
    pub destination: &'a str,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
}

/// systemd's manager object.
pub fn systemd(member: &str) -> Call<'_> {
    Call {
        destination: "org.freedesktop.systemd1",
        path: "/org/freedesktop/systemd1",
        interface: "org.freedesktop.systemd1.Manager",
        member,
    }
}

/// The whole method-call message with serial `serial`.
fn marshal_call(call: &Call, args: &[Value], serial: u32) -> Vec<u8> {
    let mut body = Writer::default();
    args.iter().for_each(|a| body.value(a));
    let signature: String = args.iter().map(Value::signature).collect();
    let mut m = Writer::default();
    m.buf.extend_from_slice(&[b'l', 1, 0, 1]);
    m.u32(body.buf.len() as u32);
    m.u32(serial);
    let fields: [(u8, &str, &str); 4] = [
        (1, "o", call.path),
        (2, "s", call.interface),
        (3, "s", call.member),
        (6, "s", call.destination),
    ];
    m.array(8, |w| {
        for (code, sig, text) in fields {
            w.pad(8);
            w.buf.push(code);
            w.sig(sig);
            w.str(text);
        }
        if !signature.is_empty() {
            w.pad(8);
            w.buf.push(8);
            w.sig("g");
            w.sig(&signature);
        }
    });
    m.pad(8);
    m.buf.extend_from_slice(&body.buf);
    m.buf
}

/// A message read back: its type (2 return, 3 error, 4 signal), header fields we use, and body.
#[derive(Debug, Default, PartialEq)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub member: Option<String>,
    pub signature: String,
    pub body: Vec<u8>,
}

/// A little-endian reader over one buffer (alignment from its start).
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn align(&mut self, n: usize) {
        self.pos = self.pos.div_ceil(n) * n;
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.align(4);
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        let s = String::from_utf8(self.take(n)?.to_vec()).ok()?;
        self.take(1)?;
        Some(s)
    }

    fn sig(&mut self) -> Option<String> {
        let n = *self.take(1)?.first()? as usize;
        let s = String::from_utf8(self.take(n)?.to_vec()).ok()?;
        self.take(1)?;
        Some(s)
    }
}

/// Parses one whole message (`buf` holds exactly it).
fn parse_message(buf: &[u8]) -> Option<Message> {
    if buf.len() < 16 || buf[0] != b'l' {
        return None;
    }
    let mut r = Reader::new(buf);
    r.pos = 12;
    let fields_len = r.u32()? as usize;
    let fields_end = 16 + fields_len;
    let mut msg = Message {
        kind: buf[1],
        ..Message::default()
    };
    while r.pos < fields_end {
        r.align(8);
        let code = *r.take(1)?.first()?;
        let sig = r.sig()?;
        match sig.as_str() {
            "u" => {
                let v = r.u32()?;
                if code == 5 {
                    msg.reply_serial = Some(v);
                }
            }
            "s" | "o" => {
                let v = r.str()?;
                match code {
                    3 => msg.member = Some(v),
                    4 => msg.error_name = Some(v),
                    _ => {}
                }
            }
            "g" => {
                let v = r.sig()?;
                if code == 8 {
                    msg.signature = v;
                }
            }
            _ => return None,
        }
    }
    let body_start = fields_end.div_ceil(8) * 8;
    msg.body = buf.get(body_start..)?.to_vec();
    Some(msg)
}

/// The total length of the message whose first 16 bytes are `head`.
fn message_len(head: &[u8; 16]) -> Option<usize> {
    if head[0] != b'l' {
        return None;
    }
    let body = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
    let fields = u32::from_le_bytes(head[12..16].try_into().ok()?) as usize;
    Some((16 + fields).div_ceil(8) * 8 + body)
}

/// The EXTERNAL auth line for `uid` (its decimal text, hex-encoded).
fn auth_line(uid: u32) -> String {
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("AUTH EXTERNAL {hex}\r\n")
}

/// A connection to one bus.
pub struct Bus {
    stream: UnixStream,
    serial: u32,
}

impl Bus {
    /// Connects to the system bus (root) or, for a rootless caller, the user's bus
    /// ($DBUS_SESSION_BUS_ADDRESS's unix path, else $XDG_RUNTIME_DIR/bus, else /run/user/<uid>/bus).
    pub fn open(user: bool) -> Result<Bus, DbusError> {
        let uid = nix::unistd::geteuid().as_raw();
        let path = if user {
            user_bus_path(uid)
        } else {
            PathBuf::from("/run/dbus/system_bus_socket")
        };
        Bus::connect(&path, uid)
    }

    pub fn connect(path: &Path, uid: u32) -> Result<Bus, DbusError> {
        let stream = UnixStream::connect(path).map_err(|source| DbusError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let mut bus = Bus { stream, serial: 0 };
        bus.auth(uid)?;
        bus.call(
            &Call {
                destination: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                interface: "org.freedesktop.DBus",
                member: "Hello",
            },
            &[],
        )?;
        Ok(bus)
    }

    fn auth(&mut self, uid: u32) -> Result<(), DbusError> {
        let io = |source| DbusError::Io { op: "auth", source };
        self.stream.write_all(b"\0").map_err(io)?;
        self.stream
            .write_all(auth_line(uid).as_bytes())
            .map_err(io)?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") && reply.len() < 512 {
            self.stream.read_exact(&mut byte).map_err(io)?;
            reply.push(byte[0]);
        }
        if !reply.starts_with(b"OK ") {
            return Err(DbusError::Auth {
                reply: String::from_utf8_lossy(&reply).trim().to_owned(),
            });
        }
        self.stream.write_all(b"BEGIN\r\n").map_err(io)
    }

    /// Calls a method and returns its reply (an error reply becomes [`DbusError::Call`]); signals
    /// that arrive meanwhile are handed to `on_signal`.
    pub fn call_with(
        &mut self,
        call: &Call,
        args: &[Value],
        on_signal: &mut dyn FnMut(&Message),
    ) -> Result<Message, DbusError> {
        self.serial += 1;
        let serial = self.serial;
        self.stream
            .write_all(&marshal_call(call, args, serial))
            .map_err(|source| DbusError::Io { op: "send", source })?;
        loop {
            let msg = self.read()?;
            if msg.kind == 4 {
                on_signal(&msg);
                continue;
            }
            if msg.reply_serial != Some(serial) {
                continue;
            }
            if msg.kind == 3 {
                let text = if msg.signature.starts_with('s') {
                    Reader::new(&msg.body).str().unwrap_or_default()
                } else {
                    String::new()
                };
                return Err(DbusError::Call {
                    member: call.member.to_owned(),
                    name: msg.error_name.unwrap_or_default(),
                    message: text,
                });
            }
            return Ok(msg);
        }
    }

    pub fn call(&mut self, call: &Call, args: &[Value]) -> Result<Message, DbusError> {
        self.call_with(call, args, &mut |_| {})
    }

    /// Reads the next message.
    pub fn read(&mut self) -> Result<Message, DbusError> {
        let io = |source| DbusError::Io { op: "read", source };
        let mut head = [0u8; 16];
        self.stream.read_exact(&mut head).map_err(io)?;
        let len = message_len(&head).ok_or(DbusError::Malformed { op: "read" })?;
        if len > 1 << 26 {
            return Err(DbusError::Malformed { op: "read" });
        }
        let mut buf = head.to_vec();
        buf.resize(len, 0);
        self.stream.read_exact(&mut buf[16..]).map_err(io)?;
        parse_message(&buf).ok_or(DbusError::Malformed { op: "read" })
    }
}

/// The user's bus socket.
pub fn user_bus_path(uid: u32) -> PathBuf {
    if let Some(addr) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS") {
        let addr = addr.to_string_lossy().into_owned();
        if let Some(path) = addr
            .split(';')
            .filter_map(|a| a.strip_prefix("unix:"))
            .flat_map(|a| a.split(','))
            .find_map(|kv| kv.strip_prefix("path="))
        {
            return PathBuf::from(path);
        }
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("bus"),
        _ => PathBuf::from(format!("/run/user/{uid}/bus")),
    }
}

/// Sets the unit's Description (runtime only): libcgroups' manager names its scopes "youki
/// container <name>".
pub fn set_description(bus: &mut Bus, unit: &str, description: &str) -> Result<(), DbusError> {
    let props = vec![("Description".to_owned(), Value::Str(description.to_owned()))];
    bus.call(
        &systemd("SetUnitProperties"),
        &[
            Value::Str(unit.to_owned()),
            Value::Bool(true),
            Value::Props(props),
        ],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_line_hex_encodes_the_decimal_uid() {
        assert_eq!(auth_line(1000), "AUTH EXTERNAL 31303030\r\n");
        assert_eq!(auth_line(0), "AUTH EXTERNAL 30\r\n");
    }

    #[test]
    fn call_is_marshalled_as_dbus_daemon_expects() {
        let call = systemd("SetUnitProperties");
        let args = [
            Value::Str("a.scope".into()),
            Value::Bool(true),
            Value::Props(vec![("Description".into(), Value::Str("x".into()))]),
        ];
        let m = marshal_call(&call, &args, 7);
        assert_eq!(&m[..4], &[b'l', 1, 0, 1]);
        assert_eq!(u32::from_le_bytes(m[8..12].try_into().unwrap()), 7);
        let total = message_len(m[..16].try_into().unwrap()).unwrap();
        assert_eq!(total, m.len());
        // The header parses back (a call has no reply serial) with the body's signature.
        let back = parse_message(&m).unwrap();
        assert_eq!(back.kind, 1);
        assert_eq!(back.member.as_deref(), Some("SetUnitProperties"));
        assert_eq!(back.signature, "sba(sv)");
        // Body: "a.scope" (4+7+1 = 12), bool (4) at 12, array length at 16, padding to 24,
        // struct: "Description" (4+11+1 = 16) at 24, variant sig "s" (3) at 40, "x" at 44.
        let b = &back.body;
        assert_eq!(&b[..4], &7u32.to_le_bytes());
        assert_eq!(&b[4..12], b"a.scope\0");
        assert_eq!(&b[12..16], &1u32.to_le_bytes());
        assert_eq!(&b[16..20], &(50u32 - 24).to_le_bytes());
        assert_eq!(&b[20..24], &[0; 4]);
        assert_eq!(&b[24..28], &11u32.to_le_bytes());
        assert_eq!(&b[28..40], b"Description\0");
        assert_eq!(&b[40..43], b"\x01s\0");
        assert_eq!(&b[44..48], &1u32.to_le_bytes());
        assert_eq!(&b[48..50], b"x\0");
        assert_eq!(b.len(), 50);
    }

    #[test]
    fn arrays_of_u32_and_u64_are_aligned() {
        let mut w = Writer::default();
        w.buf.push(1);
        w.value(&Value::U32Array(vec![5, 6]));
        assert_eq!(w.buf.len(), 4 + 4 + 8);
        assert_eq!(&w.buf[4..8], &8u32.to_le_bytes());
        let mut w = Writer::default();
        w.buf.push(1);
        w.variant(&Value::U64(9));
        // byte, sig "t" (3 bytes) -> 4, padded to 8, then 8 bytes.
        assert_eq!(w.buf.len(), 16);
        assert_eq!(&w.buf[8..16], &9u64.to_le_bytes());
    }

    #[test]
    fn error_reply_parses() {
        // An error reply: fields ERROR_NAME (4, s), REPLY_SERIAL (5, u), SIGNATURE (8, g) "s".
        let mut h = Writer::default();
        h.buf.extend_from_slice(&[b'l', 3, 1, 1]);
        let mut body = Writer::default();
        body.str("no such unit");
        h.u32(body.buf.len() as u32);
        h.u32(9);
        h.array(8, |w| {
            w.pad(8);
            w.buf.push(4);
            w.sig("s");
            w.str("org.freedesktop.systemd1.NoSuchUnit");
            w.pad(8);
            w.buf.push(5);
            w.sig("u");
            w.u32(3);
            w.pad(8);
            w.buf.push(8);
            w.sig("g");
            w.sig("s");
        });
        h.pad(8);
        h.buf.extend_from_slice(&body.buf);
        let m = parse_message(&h.buf).unwrap();
        assert_eq!(m.kind, 3);
        assert_eq!(m.reply_serial, Some(3));
        assert_eq!(
            m.error_name.as_deref(),
            Some("org.freedesktop.systemd1.NoSuchUnit")
        );
        assert_eq!(Reader::new(&m.body).str().as_deref(), Some("no such unit"));
        assert_eq!(
            message_len(h.buf[..16].try_into().unwrap()),
            Some(h.buf.len())
        );
    }

    #[test]
    fn user_bus_path_prefers_the_session_address() {
        // Only the pure part: the env is the process's, so no set_var here.
        assert!(user_bus_path(1000).to_string_lossy().ends_with("bus"));
    }
}
