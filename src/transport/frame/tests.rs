//! Frame format, decoder bounds and errors, and `auto`'s level choice.

use super::*;
use proptest::prelude::*;

/// Seeded bytes: a third text (compresses well), the rest noise.
fn mixed(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (x >> 20).is_multiple_of(3) {
            v.extend_from_slice(b"compressible text line 12345\n");
        } else {
            v.extend_from_slice(&x.to_le_bytes());
        }
    }
    v.truncate(n);
    v
}

fn encode(c: Compress, writes: &[&[u8]]) -> Vec<u8> {
    let mut w = FrameWriter::new(Vec::new(), Policy::of(c), None);
    for b in writes {
        w.write_all(b).unwrap();
    }
    w.inner
}

fn decode(link: &[u8]) -> io::Result<Vec<u8>> {
    let mut r = FrameReader::new(link, None);
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

fn header(flag: u8, stored: u32, raw: u32) -> Vec<u8> {
    let mut h = HELLO.to_vec();
    h.push(flag);
    h.extend_from_slice(&[0, 0, 0]);
    h.extend_from_slice(&stored.to_le_bytes());
    h.extend_from_slice(&raw.to_le_bytes());
    h
}

#[test]
fn every_mode_carries_the_stream_unchanged() {
    let data = mixed(3 << 20, 7);
    let parts: Vec<&[u8]> = vec![&data[..1], &data[1..100_000], &data[100_000..(3 << 20)]];
    for c in [Compress::Zstd(1), Compress::Zstd(9), Compress::Lz4, Compress::None, Compress::Auto] {
        let link = encode(c, &parts);
        assert_eq!(decode(&link).unwrap(), data, "{c:?}");
        if c != Compress::None {
            assert!(link.len() < data.len() * 9 / 10, "{c:?} shrinks the mix: {} of {}", link.len(), data.len());
        } else {
            assert!(link.len() > data.len(), "none only frames");
        }
    }
}

#[test]
fn a_frame_that_does_not_shrink_goes_raw() {
    let noise: Vec<u8> =
        mixed(200_000, 3).into_iter().enumerate().map(|(i, b)| b ^ (i as u8).wrapping_mul(151)).collect();
    let noise: Vec<u8> = noise.chunks(8).flat_map(|c| c.iter().rev().copied()).collect();
    let mut rnd = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = noise
        .iter()
        .map(|b| {
            rnd = rnd.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            b ^ (rnd >> 56) as u8
        })
        .collect();
    for c in [Compress::Zstd(3), Compress::Lz4] {
        let link = encode(c, &[&noise]);
        assert_eq!(link[HELLO.len()], FLAG_RAW, "{c:?}");
        assert_eq!(link.len(), HELLO.len() + HEADER + noise.len());
        assert_eq!(decode(&link).unwrap(), noise);
    }
}

#[test]
fn an_empty_link_is_an_empty_stream_and_a_truncated_one_an_error_with_the_offset() {
    assert_eq!(decode(&[]).unwrap(), b"");
    let data = mixed(300_000, 11);
    let link = encode(Compress::Zstd(3), &[&data[..1000], &data[1000..]]);
    // Frame boundaries: after the hello, after the first frame, at the end.
    let first = HELLO.len() + HEADER + u32::from_le_bytes(link[12..16].try_into().unwrap()) as usize;
    // Every byte of the hello and both headers, then a sample of the payloads.
    let cuts = (1..link.len()).filter(|&c| c < first + HEADER + 40 || c % 97 == 0 || c + 40 > link.len());
    for cut in cuts {
        let r = decode(&link[..cut]);
        if cut == HELLO.len() || cut == first {
            let got = r.unwrap();
            assert!(data.starts_with(&got), "clean end at a frame boundary ({cut})");
            continue;
        }
        let e = r.unwrap_err();
        if cut < HELLO.len() {
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{cut}: {e}");
        } else {
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{cut}: {e}");
            assert!(e.to_string().contains(&format!("at link byte {cut}")), "{cut}: {e}");
        }
    }
}

#[test]
fn bad_frames_are_refused_naming_the_link_byte() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\x72\x72\xd9\x4d0123".to_vec(), "an uncompressed mirror stream"),
        (b"HMLINK2\n".to_vec(), "expected the hello"),
        (header(3, 10, 10), "flag 0x03 is none of"),
        (header(0xff, 10, 10), "flag 0xff"),
        (
            [header(0, 10, 10), b"x".to_vec()]
                .concat()
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 9 { 1 } else { b })
                .collect(),
            "reserved header bytes",
        ),
        (header(0, (MAX_RAW + 1) as u32, (MAX_RAW + 1) as u32), "raw length 4194305 is outside"),
        (header(1, 10, u32::MAX), "outside"),
        (header(0, 0, 0), "raw length 0"),
        (header(0, 5, 10), "a raw frame stores 5 bytes but announces 10"),
        (header(1, 10, 10), "it must shrink"),
        (header(2, 0, 10), "it must shrink"),
        ([header(1, 4, 100), b"junk".to_vec()].concat(), "zstd data does not decode"),
        ([header(2, 4, 100), b"\xf0junk".to_vec()[..4].to_vec()].concat(), "lz4 data does not decode"),
    ];
    for (link, want) in cases {
        let e = decode(&link).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{want}: {e}");
        let text = e.to_string();
        assert!(text.contains(want), "{want}: {text}");
        assert!(text.contains("at link byte "), "{text}");
    }
    // The second frame is named by its own offset.
    let mut link = encode(Compress::None, &[b"abc"]);
    let at = link.len();
    link.extend_from_slice(&header(9, 1, 1)[HELLO.len()..]);
    link.push(0);
    let e = decode(&link).unwrap_err().to_string();
    assert!(e.contains(&format!("bad frame at link byte {at}:")), "{e}");
}

#[test]
fn a_compressed_frame_that_decodes_to_another_length_is_refused() {
    // zstd data of 50 bytes announced as 60.
    let z = zstd::bulk::compress(&[7u8; 50], 3).unwrap();
    let link = [header(1, z.len() as u32, 60), z].concat();
    let e = decode(&link).unwrap_err().to_string();
    assert!(e.contains("decodes into 50 bytes, not the 60 announced") || e.contains("does not decode"), "{e}");
    let l = lz4_flex::block::compress(&[7u8; 50]);
    let link = [header(2, l.len() as u32, 60), l].concat();
    assert!(decode(&link).is_err());
}

#[test]
fn compress_choices_parse_and_print() {
    assert_eq!(Compress::parse("auto"), Ok(Compress::Auto));
    assert_eq!(Compress::parse("zstd"), Ok(Compress::Zstd(3)));
    assert_eq!(Compress::parse("zstd:19"), Ok(Compress::Zstd(19)));
    assert_eq!(Compress::parse("lz4"), Ok(Compress::Lz4));
    assert_eq!(Compress::parse("none"), Ok(Compress::None));
    assert!(Compress::parse("zstd:0").unwrap_err().contains("from 1 to 19"));
    assert!(Compress::parse("zstd:x").is_err());
    assert!(Compress::parse("gzip").unwrap_err().contains("expected auto, zstd"));
    for c in [Compress::Auto, Compress::Zstd(7), Compress::Lz4, Compress::None] {
        assert_eq!(Compress::parse(&c.word()), Ok(c));
    }
}

#[test]
fn stats_count_stream_and_link_bytes_both_ways() {
    let data = mixed(1 << 20, 5);
    let s = LinkStats::new();
    let mut w = FrameWriter::new(Vec::new(), Policy::of(Compress::Zstd(3)), Some(Arc::clone(&s)));
    w.write_all(&data).unwrap();
    let link = w.inner;
    assert_eq!(s.stream_out.load(Ordering::Relaxed), data.len() as u64);
    assert_eq!(s.link_out.load(Ordering::Relaxed), link.len() as u64);
    let mut r = FrameReader::new(&link[..], Some(Arc::clone(&s)));
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(s.stream_in.load(Ordering::Relaxed), data.len() as u64);
    assert_eq!(s.link_in.load(Ordering::Relaxed), link.len() as u64);
}

/// A link of `rate` bytes/s for a compressor of `speed` raw bytes/s per
/// level step: how `auto` settles.
fn settle(link_rate: f64, compress_secs_per_mb: impl Fn(Method) -> f64, ratio: impl Fn(Method) -> f64) -> Method {
    let mut a = Adapt::default();
    for _ in 0..2000 {
        let m = a.method();
        let raw = 1 << 20;
        let c = compress_secs_per_mb(m);
        let link = raw as f64 * ratio(m) / link_rate;
        if let Some(p) = a.paired() {
            a.record_shadow(raw, (raw as f64 * ratio(p)) as usize, Duration::from_secs_f64(compress_secs_per_mb(p)));
        }
        // Pipelined: the thread compresses, then is blocked for what is left of the link's time.
        a.record(
            raw,
            (raw as f64 * ratio(m)) as usize,
            Duration::from_secs_f64(c),
            Duration::from_secs_f64((link - c).max(0.0)),
        );
    }
    a.settled()
}

fn level_cost(m: Method) -> f64 {
    match m {
        Method::Raw => 0.0,
        Method::Zstd(l) => 0.002 * l as f64,
        Method::Lz4 => 0.001,
    }
}

fn level_ratio(m: Method) -> f64 {
    match m {
        Method::Raw => 1.0,
        Method::Zstd(l) => 0.8 - 0.04 * l as f64,
        Method::Lz4 => 0.8,
    }
}

#[test]
fn auto_goes_raw_on_a_fast_link_and_climbs_on_a_slow_one() {
    // 2 GB/s: compressing at any level costs more than it saves.
    assert_eq!(settle(2e9, level_cost, level_ratio), Method::Raw);
    // 12.5 MB/s (100 Mbit/s): the link is the bottleneck; higher levels win while they keep up.
    let slow = settle(12.5e6, level_cost, level_ratio);
    assert!(matches!(slow, Method::Zstd(l) if l >= 9), "{slow:?}");
    // Level 3 saves half a percent over level 1 (the mixed tree): paired trials see it.
    let small = settle(12.5e6, level_cost, |m| match m {
        Method::Raw => 1.0,
        Method::Zstd(1) => 0.6030,
        _ => 0.6,
    });
    assert!(matches!(small, Method::Zstd(l) if l >= 3), "{small:?}");
    // Data where the levels hardly differ: any zstd level, never raw.
    let flat = settle(12.5e6, level_cost, |m| if m == Method::Raw { 1.0 } else { 0.67 });
    assert!(matches!(flat, Method::Zstd(_)), "{flat:?}");
    // 300 MB/s: level 1 keeps up (2 ms per MiB = 500 MB/s) and saves 30 %.
    let mid = settle(3e8, level_cost, level_ratio);
    assert!(matches!(mid, Method::Zstd(_)), "{mid:?}");
}

#[test]
fn auto_seldom_sends_raw_frames_where_the_link_is_the_bottleneck() {
    let mut a = Adapt::default();
    let mut raw_frames = 0;
    for _ in 0..500 {
        let m = a.method();
        raw_frames += usize::from(m == Method::Raw);
        let c = level_cost(m);
        let link = (2 << 20) as f64 * if m == Method::Raw { 1.0 } else { 0.6 } / 12.5e6;
        let r = if m == Method::Raw { 1.0 } else { 0.6 };
        a.record(
            2 << 20,
            ((2 << 20) as f64 * r) as usize,
            Duration::from_secs_f64(c),
            Duration::from_secs_f64((link - c).max(0.0)),
        );
    }
    assert_eq!(raw_frames, 0, "raw is never worth more on a bottleneck link");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Anything after a hello: an error or a stream, never a panic, never a
    /// buffer beyond two frames.
    #[test]
    fn any_bytes_decode_or_fail_within_bounds(body in proptest::collection::vec(any::<u8>(), 0..600), flag in 0u8..4, raw in 0u32..(8 << 20), stored in 0u32..(8 << 20)) {
        let mut link = header(flag, stored, raw);
        link.extend_from_slice(&body);
        let mut r = FrameReader::new(&link[..], None);
        let mut out = Vec::new();
        let res = r.read_to_end(&mut out);
        prop_assert!(r.out.capacity() <= MAX_RAW + 4096 && r.stored.capacity() <= MAX_RAW + 4096);
        if let Err(e) = res {
            prop_assert!(e.to_string().contains("link byte"), "{}", e);
        }
    }

    /// Valid links of random writes, cut or with one byte changed: the
    /// stream comes back, or an error naming a link byte.
    #[test]
    fn damaged_links_fail_cleanly(seed in any::<u64>(), sizes in proptest::collection::vec(1usize..70_000, 1..6), at in any::<prop::sample::Index>(), xor in 1u8..=255, cut in any::<bool>(), lz4 in any::<bool>()) {
        let data = mixed(sizes.iter().sum(), seed);
        let mut parts = Vec::new();
        let mut o = 0;
        for s in &sizes {
            parts.push(&data[o..o + s]);
            o += s;
        }
        let mut link = encode(if lz4 { Compress::Lz4 } else { Compress::Zstd(1) }, &parts);
        let i = at.index(link.len());
        if cut { link.truncate(i) } else { link[i] ^= xor }
        match decode(&link) {
            Ok(got) => prop_assert!(data.starts_with(&got) || got.len() == data.len(), "a damaged link decoded into other bytes"),
            Err(e) => prop_assert!(e.to_string().contains("link byte"), "{}", e),
        }
    }
}
