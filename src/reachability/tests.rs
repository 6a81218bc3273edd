//! The address book's rules: agreement, bounds, precedence, dial-back admission.

use super::*;

fn book(advertise: Option<&str>, listen: &str) -> AddressBook {
    let mut c = Config::defaults().expect("defaults");
    c.advertise_address = advertise.map(str::to_string);
    c.listen = listen.parse().expect("listen");
    AddressBook::new(&c)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn agreement_needs_peers_from_distinct_networks() {
    let b = book(None, "0.0.0.0:5000");
    // Three reporters in one /16 count once.
    for (i, r) in ["10.1.0.1", "10.1.2.3", "10.1.9.9"].iter().enumerate() {
        b.observe(&format!("p{i}"), ip(r), "203.0.113.5:41000", i as i64);
    }
    assert_eq!(b.candidate(), None);
    b.observe("q", ip("10.2.0.1"), "203.0.113.5:1", 10);
    assert_eq!(b.candidate(), None);
    b.observe("r", ip("10.3.0.1"), "203.0.113.5:2", 11);
    let plan = b.candidate().expect("three networks agree");
    assert_eq!(plan.address, "203.0.113.5:5000".parse().unwrap());
    assert_eq!(plan.reporters[0], "r");
    // A peer's newer observation replaces its older one.
    b.observe("r", ip("10.3.0.1"), "198.51.100.1:2", 12);
    assert_eq!(b.candidate(), None);
}

#[test]
fn loopback_addresses_are_networks_of_their_own() {
    assert_ne!(
        network_group(ip("127.100.3.2")),
        network_group(ip("127.100.3.3"))
    );
    assert_eq!(
        network_group(ip("10.1.2.3")),
        network_group(ip("10.1.200.3"))
    );
    assert_eq!(
        network_group(ip("2001:db8:1::1")),
        network_group(ip("2001:db8:2::1"))
    );
    assert_eq!(
        network_group(ip("::ffff:10.1.2.3")),
        network_group(ip("10.1.9.9"))
    );
}

#[test]
fn observations_are_bounded() {
    let b = book(None, "0.0.0.0:5000");
    for i in 0..MAX_OBSERVERS {
        assert_eq!(
            b.observe(&format!("p{i}"), ip("10.0.0.1"), "1.2.3.4:1", i as i64),
            Observed::Recorded
        );
    }
    assert_eq!(
        b.observe("new", ip("10.0.0.1"), "1.2.3.4:1", 1_000),
        Observed::RecordedEvicting
    );
    assert_eq!(b.lock().observations.len(), MAX_OBSERVERS);
    assert!(!b.lock().observations.contains_key("p0"));
    assert_eq!(b.observe("x", ip("10.0.0.1"), "", 1), Observed::Ignored);
    assert_eq!(
        b.observe("x", ip("10.0.0.1"), "0.0.0.0:1", 1),
        Observed::Ignored
    );
}

#[test]
fn precedence_and_reachability() {
    let b = book(None, "0.0.0.0:5000");
    let a = b.announcement();
    assert_eq!(
        (a.address.as_str(), a.source),
        ("0.0.0.0:5000", AddressSource::Listen)
    );
    assert_eq!(a.reachability, Reachability::Unknown);
    b.set_interface(Some(ip("192.168.1.7")));
    let a = b.announcement();
    assert_eq!(
        (a.address.as_str(), a.source),
        ("192.168.1.7:5000", AddressSource::Interface)
    );
    assert_eq!(a.reachability, Reachability::Private);
    b.set_http(ip("8.8.4.4"));
    assert_eq!(b.announcement().source, AddressSource::Http);
    b.set_stun(ip("8.8.8.8"));
    let a = b.announcement();
    assert_eq!(
        (a.source, a.reachability),
        (AddressSource::Stun, Reachability::Unknown)
    );
    b.dial_back_succeeded("9.9.9.9:5000".parse().unwrap());
    let a = b.announcement();
    assert_eq!(a.address, "9.9.9.9:5000");
    assert_eq!(
        (a.source, a.reachability),
        (AddressSource::Observed, Reachability::Public)
    );

    let c = book(Some("node.example.org:5000"), "0.0.0.0:5000");
    c.dial_back_succeeded("9.9.9.9:5000".parse().unwrap());
    let a = c.announcement();
    assert_eq!(
        (a.source, a.reachability),
        (AddressSource::Configured, Reachability::Unknown)
    );
    let d = book(Some("8.8.8.8:5000"), "0.0.0.0:5000");
    assert_eq!(d.announcement().reachability, Reachability::Public);
    let e = book(Some("10.0.0.5:5000"), "0.0.0.0:5000");
    assert_eq!(e.announcement().reachability, Reachability::Private);
}

#[test]
fn a_failed_candidate_waits_and_a_pending_one_is_not_asked_twice() {
    let b = book(None, "127.0.0.1:7000");
    for (i, r) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().enumerate() {
        b.observe(&format!("p{i}"), ip(r), "127.0.0.9:1", 0);
    }
    let plan = b.next_dial_back(0).expect("a plan");
    assert_eq!(b.next_dial_back(0), None, "one at a time");
    b.dial_back_failed(plan.address, 1_000);
    assert_eq!(b.next_dial_back(999), None);
    assert_eq!(b.announcement().source, AddressSource::Listen);
    let again = b.next_dial_back(1_000).expect("retried after the pause");
    b.dial_back_succeeded(again.address);
    assert_eq!(b.next_dial_back(5_000), None, "verified: nothing to ask");
    assert_eq!(b.announcement().address, "127.0.0.9:7000");
}

#[test]
fn dial_back_only_to_the_askers_ip_and_not_too_often() {
    let b = book(None, "0.0.0.0:5000");
    assert!(matches!(
        b.admit_dial_back(ip("10.0.0.1"), "10.0.0.2:5000", 0),
        Err(DialBackRefusal::NotYourAddress { .. })
    ));
    assert_eq!(
        b.admit_dial_back(ip("10.0.0.1"), "non\u{1b}[2Jsense", 0),
        Err(DialBackRefusal::BadAddress("non[2Jsense".into()))
    );
    assert_eq!(
        b.admit_dial_back(ip("::ffff:10.0.0.1"), "10.0.0.1:6000", 0),
        Ok("10.0.0.1:6000".parse().unwrap())
    );
    assert!(matches!(
        b.admit_dial_back(ip("10.0.0.1"), "10.0.0.1:6001", 1),
        Err(DialBackRefusal::TooSoon { .. })
    ));
    let later = DIAL_BACK_ASKER_INTERVAL.as_millis() as i64;
    assert!(
        b.admit_dial_back(ip("10.0.0.1"), "10.0.0.1:6001", later)
            .is_ok()
    );
}
