//! Tests of the record layouts: expected bytes are written out field by field from RocketMQ's
//! documented layout, not produced by our encoder.

use std::net::SocketAddr;

use super::*;

fn sample() -> MessageInput {
    MessageInput {
        topic: "TopicTest".into(),
        queue_id: 3,
        flag: 7,
        body: b"hello".to_vec(),
        properties: "TAGS\u{1}TagA\u{2}KEYS\u{1}k1".into(),
        sys_flag: 0,
        born_timestamp: 0x0102_0304_0506_0708,
        born_host: "10.0.0.1:5555".parse::<SocketAddr>().unwrap(),
        store_host: "192.168.1.2:10911".parse::<SocketAddr>().unwrap(),
        reconsume_times: 2,
        prepared_transaction_offset: 0,
    }
}

#[test]
fn stored_record_layout_field_by_field() {
    let msg = sample();
    let placement =
        Placement { queue_offset: 42, physical_offset: 0x1_0000_0000, store_timestamp: 0x0000_0190_0000_0001 };
    let mut got = Vec::new();
    encode_record(&msg, placement, &mut got);

    let props = b"TAGS\x01TagA\x02KEYS\x01k1";
    let total = 91 + 5 + 9 + props.len();
    let mut want: Vec<u8> = Vec::new();
    want.extend_from_slice(&(total as u32).to_be_bytes()); // 1 TOTALSIZE
    want.extend_from_slice(&[0xDA, 0xA3, 0x20, 0xA7]); // 2 MAGICCODE
    want.extend_from_slice(&(crc32fast::hash(b"hello") & 0x7FFF_FFFF).to_be_bytes()); // 3 BODYCRC
    want.extend_from_slice(&[0, 0, 0, 3]); // 4 QUEUEID
    want.extend_from_slice(&[0, 0, 0, 7]); // 5 FLAG
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 42]); // 6 QUEUEOFFSET
    want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // 7 PHYSICALOFFSET
    want.extend_from_slice(&[0, 0, 0, 0]); // 8 SYSFLAG
    want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // 9 BORNTIMESTAMP
    want.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0x15, 0xB3]); // 10 BORNHOST 10.0.0.1:5555
    want.extend_from_slice(&[0, 0, 1, 0x90, 0, 0, 0, 1]); // 11 STORETIMESTAMP
    want.extend_from_slice(&[192, 168, 1, 2, 0, 0, 0x2A, 0x9F]); // 12 STOREHOST 192.168.1.2:10911
    want.extend_from_slice(&[0, 0, 0, 2]); // 13 RECONSUMETIMES
    want.extend_from_slice(&[0; 8]); // 14 PreparedTransactionOffset
    want.extend_from_slice(&[0, 0, 0, 5]); // 15 BODY length
    want.extend_from_slice(b"hello");
    want.push(9); // 16 TOPIC length
    want.extend_from_slice(b"TopicTest");
    want.extend_from_slice(&(props.len() as u16).to_be_bytes()); // 17 PROPERTIES length
    want.extend_from_slice(props);

    assert_eq!(got, want);
    assert_eq!(msg.record_bytes(), total);

    match scan_record(&got, true) {
        Scanned::Record(r) => {
            assert_eq!(r.to_input(), msg);
            assert_eq!(r.queue_offset, 42);
            assert_eq!(r.physical_offset, 0x1_0000_0000);
            assert_eq!(r.store_timestamp, 0x0000_0190_0000_0001);
            assert_eq!(r.property("TAGS"), Some("TagA"));
        }
        other => panic!("expected a record, got {other:?}"),
    }
}

#[test]
fn ipv6_hosts_widen_the_host_fields_and_set_sys_flags() {
    let mut msg = sample();
    msg.born_host = "[::1]:9000".parse().unwrap();
    msg.store_host = "[fe80::1]:10911".parse().unwrap();
    let mut got = Vec::new();
    encode_record(&msg, Placement { queue_offset: 0, physical_offset: 0, store_timestamp: 0 }, &mut got);
    assert_eq!(got.len(), msg.record_bytes());
    assert_eq!(got.len(), 91 + 24 + 5 + 9 + msg.properties.len());
    // SYSFLAG (bytes 36..40) carries BORNHOST_V6 0x10 and STOREHOST_V6 0x20.
    assert_eq!(&got[36..40], &[0, 0, 0, 0x30]);
    // The born host: 16 address bytes then the port as an int.
    assert_eq!(&got[48..64], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(&got[64..68], &9000i32.to_be_bytes());
    let Scanned::Record(r) = scan_record(&got, true) else { panic!("not a record") };
    assert_eq!(r.born_host, msg.born_host);
    assert_eq!(r.store_host, msg.store_host);
}

#[test]
fn end_of_file_filler_layout() {
    let mut got = Vec::new();
    encode_blank(1000, &mut got);
    assert_eq!(got, [0, 0, 0x03, 0xE8, 0xCB, 0xD4, 0x31, 0x94]);
    assert_eq!(scan_record(&got, true), Scanned::Blank(1000));
}

#[test]
fn consume_queue_unit_layout() {
    // "TagA".hashCode() = ((84*31 + 97)*31 + 103)*31 + 65 = 2598919 = 0x0027A807.
    let unit = CqUnit { physical_offset: 0x1_0000_0000, size: 300, tags_code: tags_code(Some("TagA")) };
    assert_eq!(unit.encode(), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x01, 0x2C, 0, 0, 0, 0, 0x00, 0x27, 0xA8, 0x07]);
    assert_eq!(CqUnit::decode(&unit.encode()), Some(unit));
    assert_eq!(CqUnit::PAD.encode(), [0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn java_hashes() {
    // (string, String.hashCode() as printed by Java)
    let cases: &[(&str, i32)] = &[
        ("", 0),
        ("a", 97),
        ("TagA", 2_598_919),
        ("hello", 99_162_322),
        ("polygenelubricants", i32::MIN),
        ("\u{e9}t\u{e9}", 0xe9 * 961 + 116 * 31 + 0xe9),
        ("\u{1F600}", 0xD83D * 31 + 0xDE00),
    ];
    for (s, want) in cases {
        assert_eq!(java_string_hash(s), *want, "hash of {s:?}");
    }
    // A negative hash sign-extends into the tags code; i32::MIN folds to 0 in the index.
    assert_eq!(tags_code(Some("polygenelubricants")), -2_147_483_648i64);
    assert_eq!(tags_code(None), 0);
    assert_eq!(index_key_hash("polygenelubricants"), 0);
    assert_eq!(index_key_hash("a"), 97);
}

#[test]
fn properties_accept_both_trailing_styles_and_drop_empty_entries() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("A\u{1}1\u{2}B\u{1}2", &[("A", "1"), ("B", "2")]),
        ("A\u{1}1\u{2}B\u{1}2\u{2}", &[("A", "1"), ("B", "2")]),
        ("A\u{1}\u{2}B\u{1}2", &[("B", "2")]),
        ("\u{1}x\u{2}B\u{1}2", &[("B", "2")]),
        ("garbage", &[]),
        ("", &[]),
    ];
    for (enc, want) in cases {
        let got: Vec<_> = properties(enc).collect();
        assert_eq!(&got, want, "parsing {enc:?}");
    }
    assert_eq!(encode_properties([("A", "1"), ("B", "2")]), "A\u{1}1\u{2}B\u{1}2");
}

#[test]
fn file_names() {
    assert_eq!(offset_file_name(0), "00000000000000000000");
    assert_eq!(offset_file_name(1_073_741_824), "00000000001073741824");
    assert_eq!(parse_offset_file_name("00000000001073741824"), Some(1_073_741_824));
    for bad in ["0000000000107374182", "0000000000107374182x", "abc", "", "000000000010737418240"] {
        assert_eq!(parse_offset_file_name(bad), None, "{bad}");
    }
}

#[test]
fn scan_rejects_damage_without_panicking() {
    let mut rec = Vec::new();
    encode_record(&sample(), Placement { queue_offset: 0, physical_offset: 0, store_timestamp: 1 }, &mut rec);
    // (what to damage, expected outcome)
    let flip_body = |b: &mut Vec<u8>| b[84 + 4] ^= 0x01;
    let bad_magic = |b: &mut Vec<u8>| b[4] = 0;
    let short_total = |b: &mut Vec<u8>| b[3] = b[3].wrapping_sub(1);
    let long_body_len = |b: &mut Vec<u8>| b[84 + 3] = 200;
    let zero_total = |b: &mut Vec<u8>| b[..4].copy_from_slice(&[0; 4]);
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    type Expect = fn(&Scanned<'_>) -> bool;
    let cases: Vec<(&str, Damage, Expect)> = vec![
        ("body bit flip", Box::new(flip_body), |s| matches!(s, Scanned::Corrupt("body CRC mismatch"))),
        ("bad magic", Box::new(bad_magic), |s| matches!(s, Scanned::Corrupt("bad magic"))),
        ("total one short", Box::new(short_total), |s| matches!(s, Scanned::Corrupt(_))),
        ("body length too long", Box::new(long_body_len), |s| matches!(s, Scanned::Corrupt(_))),
        ("zero length", Box::new(zero_total), |s| matches!(s, Scanned::End)),
    ];
    for (name, damage, ok) in cases {
        let mut b = rec.clone();
        damage(&mut b);
        let s = scan_record(&b, true);
        assert!(ok(&s), "{name}: got {s:?}");
    }
    // Every truncation of a valid record is End or Corrupt, never a record.
    for cut in 0..rec.len() {
        let s = scan_record(&rec[..cut], true);
        assert!(matches!(s, Scanned::End | Scanned::Corrupt(_)), "cut at {cut}: {s:?}");
    }
    // Random bytes never panic.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        let len = (x % 300) as usize;
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
        if buf.len() > 8 {
            buf[4..8].copy_from_slice(&MESSAGE_MAGIC.to_be_bytes());
        }
        let _ = scan_record(&buf, x.is_multiple_of(2));
    }
}
