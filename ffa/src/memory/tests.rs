//! Tests of the memory transaction and relinquish descriptors.

use super::*;
use alloc::vec;
use arm_ffa::memory_management as mm;
use proptest::prelude::*;

const V1_1: Version = Version(1, 1);
const V1_2: Version = Version(1, 2);

fn rw(endpoint: u16) -> Receiver {
    Receiver {
        endpoint,
        access: DataAccess::ReadWrite,
        executable: false,
    }
}

fn sample() -> MemTransaction {
    MemTransaction {
        sender: 0x0001,
        attributes: ATTR_NORMAL_WB_INNER_SHAREABLE,
        flags: 0,
        handle: 0x1122_3344_5566_7788,
        tag: 0x99,
        receivers: vec![
            rw(0x8001),
            Receiver {
                endpoint: 0x8002,
                access: DataAccess::ReadOnly,
                executable: true,
            },
        ],
        ranges: vec![
            MemRange {
                address: 0x4000_0000,
                page_count: 2,
            },
            MemRange {
                address: 0x4010_0000,
                page_count: 1,
            },
            MemRange {
                address: 0x8_0000_0000,
                page_count: 7,
            },
        ],
    }
}

fn packed(desc: &MemTransaction, version: Version) -> Vec<u8> {
    let mut buf = vec![0xa5; 4096];
    let len = desc.pack(version, &mut buf).unwrap();
    assert_eq!(len, desc.packed_len(version).unwrap());
    buf.truncate(len);
    buf
}

fn put_u32(buf: &mut [u8], offset: usize, value: u32) {
    buf[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn round_trip_both_versions() {
    for (version, emad) in [(V1_1, 16), (V1_2, 32)] {
        let desc = sample();
        let buf = packed(&desc, version);
        assert_eq!(buf.len(), 48 + 2 * emad + 16 + 3 * 16);
        assert_eq!(MemTransaction::unpack(version, &buf).unwrap(), desc);
        // Trailing bytes after the descriptor are ignored.
        let mut longer = buf.clone();
        longer.extend_from_slice(&[0xff; 64]);
        assert_eq!(MemTransaction::unpack(version, &longer).unwrap(), desc);
    }
}

#[test]
fn later_1x_versions_use_32_byte_emads() {
    let desc = sample();
    let buf = packed(&desc, Version(1, 3));
    assert_eq!(u32::from_le_bytes(buf[24..28].try_into().unwrap()), 32);
    assert_eq!(MemTransaction::unpack(Version(1, 3), &buf).unwrap(), desc);
}

#[test]
fn retrieve_request_has_no_composite() {
    let req = MemTransaction::retrieve_request(1, 0xabcd, 7, ShareKind::Share, rw(0x8001)).unwrap();
    for (version, emad) in [(V1_1, 16usize), (V1_2, 32)] {
        let buf = packed(&req, version);
        assert_eq!(buf.len(), 48 + emad);
        // Composite offset field of the EMAD.
        assert_eq!(&buf[52..56], &[0, 0, 0, 0]);
        assert_eq!(MemTransaction::unpack(version, &buf).unwrap(), req);
    }
}

#[test]
fn known_answer_v1_2() {
    let desc = MemTransaction {
        sender: 0x0001,
        attributes: ATTR_NORMAL_WB_INNER_SHAREABLE,
        flags: 0,
        handle: 0x1122_3344_5566_7788,
        tag: 0,
        receivers: vec![rw(0x8001)],
        ranges: vec![MemRange {
            address: 0x4000_0000,
            page_count: 2,
        }],
    };
    #[rustfmt::skip]
    let expected: [u8; 112] = [
        // Header.
        0x01, 0x00, 0x2f, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
        0, 0, 0, 0, 0, 0, 0, 0,
        0x20, 0, 0, 0, 0x01, 0, 0, 0,
        0x30, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        // EMAD at 48: endpoint, RW + instruction "not specified", flags, composite offset 80.
        0x01, 0x80, 0x02, 0x00, 0x50, 0, 0, 0,
        // impdef (16) and reserved (8).
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        // Composite at 80: total pages 2, one range.
        0x02, 0, 0, 0, 0x01, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        // Constituent at 96.
        0x00, 0x00, 0x00, 0x40, 0, 0, 0, 0,
        0x02, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(packed(&desc, V1_2), expected);
    assert_eq!(MemTransaction::unpack(V1_2, &expected).unwrap(), desc);
}

#[test]
fn v1_1_layout_matches_arm_ffa() {
    let desc = MemTransaction {
        receivers: vec![rw(0x8003)],
        ..sample()
    };
    let ours = packed(&desc, V1_1);

    let theirs_desc = mm::MemTransactionDesc {
        sender_id: desc.sender,
        mem_region_attr: mm::MemRegionAttributes::try_from(desc.attributes).unwrap(),
        flags: mm::MemTransactionFlags(desc.flags),
        handle: mm::Handle(desc.handle),
        tag: desc.tag,
    };
    let constituents: Vec<_> = desc
        .ranges
        .iter()
        .map(|r| mm::ConstituentMemRegion {
            address: r.address,
            page_cnt: r.page_count,
        })
        .collect();
    let perms = [mm::MemAccessPerm {
        endpoint_id: 0x8003,
        instr_access: mm::InstuctionAccessPerm::NotSpecified,
        data_access: mm::DataAccessPerm::ReadWrite,
        flags: 0,
    }];
    let mut theirs = vec![0u8; 4096];
    let len = theirs_desc.pack(&constituents, &perms, &mut theirs);
    assert_eq!(&theirs[..len], &ours[..]);

    let (_, perms_it, ranges_it) = mm::MemTransactionDesc::unpack(&ours).unwrap();
    assert_eq!(perms_it.count(), 1);
    assert_eq!(ranges_it.unwrap().count(), 3);
}

#[test]
fn attribute_constant_matches_arm_ffa() {
    let attr = mm::MemRegionAttributes {
        security: mm::MemRegionSecurity::Secure,
        mem_type: mm::MemType::Normal {
            cacheability: mm::Cacheability::WriteBack,
            shareability: mm::Shareability::Inner,
        },
    };
    assert_eq!(u16::from(attr), ATTR_NORMAL_WB_INNER_SHAREABLE);
    let ns = mm::MemRegionAttributes {
        security: mm::MemRegionSecurity::NonSecure,
        ..attr
    };
    assert_eq!(
        u16::from(ns),
        ATTR_NORMAL_WB_INNER_SHAREABLE | ATTR_NON_SECURE
    );
}

#[test]
fn share_kind_flags() {
    for kind in [ShareKind::Share, ShareKind::Lend, ShareKind::Donate] {
        assert_eq!(
            ShareKind::from_flags(kind.type_flag() | FLAG_CLEAR),
            Some(kind)
        );
    }
    assert_eq!(ShareKind::from_flags(FLAG_TIME_SLICE), None);
    assert_eq!(mm::MemTransactionFlags::TYPE_LEND, FLAG_TYPE_LEND);
}

#[test]
fn permissions_encoding() {
    let mut desc = MemTransaction::retrieve_request(1, 2, 0, ShareKind::Share, rw(0x8001)).unwrap();
    // Share retrieve: instruction access "not specified".
    assert_eq!(packed(&desc, V1_2)[50], 0b0010);
    desc.flags = ShareKind::Lend.type_flag();
    assert_eq!(packed(&desc, V1_2)[50], 0b0110);
    desc.flags = ShareKind::Donate.type_flag();
    desc.receivers[0].access = DataAccess::ReadOnly;
    assert_eq!(packed(&desc, V1_2)[50], 0b0101);
    desc.receivers[0].executable = true;
    desc.receivers[0].access = DataAccess::NotSpecified;
    assert_eq!(packed(&desc, V1_2)[50], 0b1000);
    assert_eq!(
        MemTransaction::unpack(V1_2, &packed(&desc, V1_2)).unwrap(),
        desc
    );
}

#[test]
fn unpack_accepts_16_byte_emads_at_v1_2() {
    let desc = sample();
    let buf = packed(&desc, V1_1);
    assert_eq!(MemTransaction::unpack(V1_2, &buf).unwrap(), desc);
}

#[test]
fn unpack_rejects_emad_size_mismatch() {
    let buf = packed(&sample(), V1_2);
    // 32-byte EMADs are not a v1.1 layout.
    assert_eq!(
        MemTransaction::unpack(V1_1, &buf),
        Err(DescriptorError::Malformed)
    );
    for size in [0, 8, 24, 48, 64] {
        let mut bad = buf.clone();
        put_u32(&mut bad, 24, size);
        assert_eq!(
            MemTransaction::unpack(V1_2, &bad),
            Err(DescriptorError::Malformed),
            "size {size}"
        );
    }
}

#[test]
fn unpack_rejects_unknown_versions() {
    let buf = packed(&sample(), V1_2);
    for version in [Version(1, 0), Version(2, 0), Version(0, 9)] {
        assert_eq!(
            MemTransaction::unpack(version, &buf),
            Err(DescriptorError::Version)
        );
        assert_eq!(
            sample().pack(version, &mut [0; 4096]),
            Err(DescriptorError::Version)
        );
    }
}

#[test]
fn unpack_rejects_truncated() {
    for version in [V1_1, V1_2] {
        let buf = packed(&sample(), version);
        for len in 0..buf.len() {
            assert_eq!(
                MemTransaction::unpack(version, &buf[..len]),
                Err(DescriptorError::TooSmall),
                "len {len}"
            );
        }
    }
}

#[test]
fn unpack_rejects_bad_emad_offset() {
    let buf = packed(&sample(), V1_2);
    for offset in [0, 16, 32, 40, 56, 49] {
        let mut bad = buf.clone();
        put_u32(&mut bad, 32, offset);
        assert_eq!(
            MemTransaction::unpack(V1_2, &bad),
            Err(DescriptorError::Malformed),
            "offset {offset}"
        );
    }
    // Aligned but beyond the buffer.
    for offset in [4096, u32::MAX - 15] {
        let mut bad = buf.clone();
        put_u32(&mut bad, 32, offset);
        assert_eq!(
            MemTransaction::unpack(V1_2, &bad),
            Err(DescriptorError::TooSmall)
        );
    }
}

#[test]
fn unpack_rejects_bad_emad_count() {
    let buf = packed(&sample(), V1_2);
    let mut zero = buf.clone();
    put_u32(&mut zero, 28, 0);
    assert_eq!(
        MemTransaction::unpack(V1_2, &zero),
        Err(DescriptorError::Malformed)
    );
    for count in [3, 1000, u32::MAX / 32 + 1, u32::MAX] {
        let mut bad = buf.clone();
        put_u32(&mut bad, 28, count);
        let result = MemTransaction::unpack(V1_2, &bad);
        // Three EMADs overlap the composite that the first two point at; more do not fit.
        if count == 3 {
            assert_eq!(result, Err(DescriptorError::Malformed));
        } else {
            assert_eq!(result, Err(DescriptorError::TooSmall), "count {count}");
        }
    }
}

#[test]
fn unpack_rejects_bad_composite_offset() {
    let buf = packed(&sample(), V1_2);
    let emad0 = 48 + 4;
    let emad1 = 48 + 32 + 4;
    let set_both = |value: u32| {
        let mut bad = buf.clone();
        put_u32(&mut bad, emad0, value);
        put_u32(&mut bad, emad1, value);
        bad
    };
    // Beyond the buffer.
    for offset in [u32::try_from(buf.len()).unwrap(), 4096, u32::MAX - 7] {
        assert_eq!(
            MemTransaction::unpack(V1_2, &set_both(offset)),
            Err(DescriptorError::TooSmall),
            "offset {offset}"
        );
    }
    // Inside the header or EMAD array, or misaligned.
    for offset in [8, 48, 96, 116] {
        assert_eq!(
            MemTransaction::unpack(V1_2, &set_both(offset)),
            Err(DescriptorError::Malformed),
            "offset {offset}"
        );
    }
    // Receivers disagreeing about the composite.
    let mut split = buf.clone();
    put_u32(&mut split, emad1, 0);
    assert_eq!(
        MemTransaction::unpack(V1_2, &split),
        Err(DescriptorError::Malformed)
    );
}

#[test]
fn unpack_rejects_bad_composite() {
    let buf = packed(&sample(), V1_2);
    let composite = 48 + 64;
    // Total page count mismatch (sum is 10).
    for total in [0, 9, 11, u32::MAX] {
        let mut bad = buf.clone();
        put_u32(&mut bad, composite, total);
        assert_eq!(
            MemTransaction::unpack(V1_2, &bad),
            Err(DescriptorError::Malformed),
            "total {total}"
        );
    }
    // Range count beyond the buffer, including overflow.
    for count in [4, 1 << 28, u32::MAX] {
        let mut bad = buf.clone();
        put_u32(&mut bad, composite + 4, count);
        assert_eq!(
            MemTransaction::unpack(V1_2, &bad),
            Err(DescriptorError::TooSmall),
            "count {count}"
        );
    }
    // Fewer ranges than pages claim.
    let mut fewer = buf.clone();
    put_u32(&mut fewer, composite + 4, 2);
    assert_eq!(
        MemTransaction::unpack(V1_2, &fewer),
        Err(DescriptorError::Malformed)
    );
    // Unaligned constituent address.
    let mut unaligned = buf.clone();
    unaligned[composite + 16] = 0x10;
    assert_eq!(
        MemTransaction::unpack(V1_2, &unaligned),
        Err(DescriptorError::Malformed)
    );
}

#[test]
fn unpack_sums_page_counts_without_overflow() {
    let mut desc = sample();
    desc.ranges = vec![
        MemRange {
            address: 0,
            page_count: u32::MAX,
        },
        MemRange {
            address: 0x1000,
            page_count: 1,
        },
    ];
    assert_eq!(
        desc.pack(V1_2, &mut [0; 4096]),
        Err(DescriptorError::Malformed)
    );
    desc.ranges[1].page_count = 0;
    let mut buf = packed(&desc, V1_2);
    // Make the second range overflow a u32 sum; total stays u32::MAX.
    let second = 48 + 64 + 16 + 16;
    put_u32(&mut buf, second + 8, 1);
    assert_eq!(
        MemTransaction::unpack(V1_2, &buf),
        Err(DescriptorError::Malformed)
    );
    assert_eq!(desc.total_pages(), u64::from(u32::MAX));
}

#[test]
fn unpack_rejects_reserved_permissions() {
    let buf = packed(&sample(), V1_2);
    for perms in [0b0011, 0b1100, 0b1111] {
        let mut bad = buf.clone();
        bad[50] = perms;
        assert_eq!(
            MemTransaction::unpack(V1_2, &bad),
            Err(DescriptorError::Malformed),
            "perms {perms:#b}"
        );
    }
}

#[test]
fn pack_rejects_bad_input() {
    let mut desc = sample();
    let len = desc.packed_len(V1_2).unwrap();
    let mut small = vec![0; len - 1];
    assert_eq!(desc.pack(V1_2, &mut small), Err(DescriptorError::TooSmall));
    let mut exact = vec![0; len];
    assert_eq!(desc.pack(V1_2, &mut exact), Ok(len));

    desc.ranges[1].address += 8;
    assert_eq!(
        desc.pack(V1_2, &mut [0; 4096]),
        Err(DescriptorError::Malformed)
    );

    desc.receivers.clear();
    assert_eq!(
        desc.pack(V1_2, &mut [0; 4096]),
        Err(DescriptorError::Malformed)
    );
}

#[test]
fn pack_clears_stale_bytes() {
    let desc = sample();
    let mut buf = vec![0xff; 4096];
    let len = desc.pack(V1_2, &mut buf).unwrap();
    assert_eq!(&buf[..len], &packed(&desc, V1_2)[..]);
    // Reserved header bytes and the impdef/reserved EMAD bytes are zero.
    assert!(buf[36..48].iter().all(|&b| b == 0));
    assert!(buf[56..80].iter().all(|&b| b == 0));
    assert!(buf[len..].iter().all(|&b| b == 0xff));
}

#[test]
fn relinquish_round_trip() {
    let desc = MemRelinquishDesc {
        handle: 0x0102_0304_0506_0708,
        flags: RELINQUISH_FLAG_CLEAR,
        endpoints: vec![0x8001],
    };
    let mut buf = [0xee; 64];
    let len = desc.pack(&mut buf).unwrap();
    assert_eq!(len, 18);
    assert_eq!(
        buf[..18],
        [
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0x01,
            0x80
        ]
    );
    assert_eq!(MemRelinquishDesc::unpack(&buf[..len]).unwrap(), desc);
}

#[test]
fn relinquish_rejects_bad_input() {
    let empty = MemRelinquishDesc {
        handle: 1,
        flags: 0,
        endpoints: vec![],
    };
    assert_eq!(empty.pack(&mut [0; 64]), Err(DescriptorError::Malformed));
    let two = MemRelinquishDesc {
        endpoints: vec![1, 2],
        ..empty
    };
    assert_eq!(two.pack(&mut [0; 19]), Err(DescriptorError::TooSmall));

    let mut buf = [0u8; 20];
    two.pack(&mut buf).unwrap();
    for len in 0..20 {
        assert_eq!(
            MemRelinquishDesc::unpack(&buf[..len]),
            Err(DescriptorError::TooSmall),
            "len {len}"
        );
    }
    let mut huge = buf;
    put_u32(&mut huge, 12, u32::MAX);
    assert_eq!(
        MemRelinquishDesc::unpack(&huge),
        Err(DescriptorError::TooSmall)
    );
    let mut zero = buf;
    put_u32(&mut zero, 12, 0);
    assert_eq!(
        MemRelinquishDesc::unpack(&zero),
        Err(DescriptorError::Malformed)
    );
}

fn arb_receiver() -> impl Strategy<Value = Receiver> {
    (
        any::<u16>(),
        prop_oneof![
            Just(DataAccess::NotSpecified),
            Just(DataAccess::ReadOnly),
            Just(DataAccess::ReadWrite)
        ],
        any::<bool>(),
    )
        .prop_map(|(endpoint, access, executable)| Receiver {
            endpoint,
            access,
            executable,
        })
}

fn arb_transaction() -> impl Strategy<Value = MemTransaction> {
    (
        any::<(u16, u16, u32, u64, u64)>(),
        proptest::collection::vec(arb_receiver(), 1..5),
        proptest::collection::vec((0u64..1 << 40, 0u32..1 << 20), 0..6),
    )
        .prop_map(
            |((sender, attributes, flags, handle, tag), receivers, ranges)| MemTransaction {
                sender,
                attributes,
                flags,
                handle,
                tag,
                receivers,
                ranges: ranges
                    .into_iter()
                    .map(|(page, page_count)| MemRange {
                        address: page * PAGE_SIZE,
                        page_count,
                    })
                    .collect(),
            },
        )
}

proptest! {
    #[test]
    fn unpack_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for version in [V1_1, V1_2, Version(1, 0), Version(1, 3)] {
            let _ = MemTransaction::unpack(version, &bytes);
        }
        let _ = MemRelinquishDesc::unpack(&bytes);
    }

    #[test]
    fn unpack_never_panics_on_mutated(
        desc in arb_transaction(),
        v12 in any::<bool>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let version = if v12 { V1_2 } else { V1_1 };
        let mut buf = packed(&desc, version);
        for (at, byte) in edits {
            let len = buf.len();
            buf[at % len] = byte;
        }
        if let Ok(got) = MemTransaction::unpack(version, &buf) {
            // Whatever decodes re-packs to something that decodes the same.
            let again = packed(&got, version);
            prop_assert_eq!(MemTransaction::unpack(version, &again).unwrap(), got);
        }
    }

    #[test]
    fn round_trip(desc in arb_transaction(), v12 in any::<bool>()) {
        let version = if v12 { V1_2 } else { V1_1 };
        let buf = packed(&desc, version);
        let got = MemTransaction::unpack(version, &buf).unwrap();
        // Instruction access "not executable" and "not specified" both read back as false.
        prop_assert_eq!(got, desc);
    }
}
