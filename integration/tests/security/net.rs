//! Network egress: the host's loopback (TCP, UDP, DNS, abstract unix sockets), other addresses,
//! raw sockets and interface configuration.

use super::*;
use crate::both;

both!(
    net_tcp_to_host_loopback,
    net_udp_to_host_loopback,
    net_dns_lookup_and_exfiltration,
    net_tcp_to_other_addresses,
    net_unix_sockets_of_the_host,
    net_raw_sockets_and_interface_config,
);

const NO_NET: &[&str] = &[
    "ENETUNREACH",
    "ECONNREFUSED",
    "EADDRNOTAVAIL",
    "EHOSTUNREACH",
];

fn net_tcp_to_host_loopback(t: &Ctx) {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").ok();
    let mut targets = vec![format!("127.0.0.1:{}", v4.local_addr().unwrap().port())];
    if let Some(l) = &v6 {
        targets.push(format!("[::1]:{}", l.local_addr().unwrap().port()));
    }
    let args: Vec<&str> = targets.iter().map(String::as_str).collect();
    let a = python(t, "net_tcp", &args, &[]);
    a.blocked(
        "tcp connect",
        NO_NET,
        "new network namespace: its loopback is not the host's",
    );
    assert_no_tcp_client(&v4, &a.label);
    if let Some(l) = &v6 {
        assert_no_tcp_client(l, &a.label);
    }
    a.say("host listeners on 127.0.0.1/::1 accepted nothing");
}

fn net_udp_to_host_loopback(t: &Ctx) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", s.local_addr().unwrap().port());
    let a = python(t, "net_udp", &[&target], &[]);
    a.blocked_or(
        "udp sendto",
        NO_NET,
        "new network namespace",
        "delivered to the sandbox's own loopback, not the host's",
    );
    assert_no_datagram(&s, &a.label);
    a.say("host UDP socket on 127.0.0.1 received nothing");
}

fn net_dns_lookup_and_exfiltration(t: &Ctx) {
    let fake_dns = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut servers = vec![format!(
        "127.0.0.1:{}",
        fake_dns.local_addr().unwrap().port()
    )];
    // The host's real resolvers, as the code might guess them.
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for ns in resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(str::trim)
        .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
    {
        servers.push(format!("{ns}:53"));
    }
    servers.push("8.8.8.8:53".into());
    let mut args = vec!["deb.debian.org"];
    args.extend(servers.iter().map(String::as_str));
    let a = python(t, "net_dns", &args, &[]);
    a.blocked(
        "getaddrinfo",
        &["EAI"],
        "no resolv.conf or hosts from the host, no network",
    );
    a.blocked(
        "dns query",
        &["ENETUNREACH", "ETIMEDOUT", "ECONNREFUSED"],
        "new empty network namespace: no route to any resolver",
    );
    assert_no_datagram(&fake_dns, &a.label);
    a.say("the host's fake resolver on 127.0.0.1 received no query");
}

fn net_tcp_to_other_addresses(t: &Ctx) {
    let any = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = any.local_addr().unwrap().port();
    let mut targets = vec![
        "1.1.1.1:443".to_string(),
        "8.8.8.8:53".into(),
        "169.254.169.254:80".into(),
        "10.0.2.2:80".into(),
        "[2001:4860:4860::8888]:443".into(),
    ];
    if let Some(ip) = host_ipv4() {
        targets.push(format!("{ip}:{port}"));
    }
    let args: Vec<&str> = targets.iter().map(String::as_str).collect();
    let a = python(t, "net_tcp", &args, &[]);
    a.blocked(
        "tcp connect",
        NO_NET,
        "new network namespace: no interface but lo, no route",
    );
    assert_no_tcp_client(&any, &a.label);
    a.say("host listener on 0.0.0.0 (reached via the host's address) accepted nothing");
}

fn net_unix_sockets_of_the_host(t: &Ctx) {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("husk-sec-{}", t.id("abs"));
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let a = python(
        t,
        "net_unix",
        &[
            &name,
            "/run/docker.sock",
            "/var/run/dbus/system_bus_socket",
            "/run/containerd/containerd.sock",
        ],
        &[],
    );
    a.blocked(
        "unix connect @",
        &["ECONNREFUSED"],
        "abstract sockets belong to the network namespace",
    );
    a.blocked(
        "unix connect /",
        &["ENOENT"],
        "no host path is bound but the workspace",
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "{}: the host's abstract socket got a connection",
        a.label
    );
    a.say("host abstract socket accepted nothing");
}

fn net_raw_sockets_and_interface_config(t: &Ctx) {
    let a = python(t, "net_raw", &[], &[]);
    a.blocked(
        "socket(",
        &["EPERM"],
        "no CAP_NET_RAW (no capabilities at all)",
    );
    a.blocked("ioctl(", &["EPERM"], "no CAP_NET_ADMIN");
    assert_eq!(
        a.fact("interfaces"),
        &serde_json::json!(["lo"]),
        "{}",
        a.dump()
    );
    a.say("interfaces: lo only");
}
