//! The SP package ("SPKG" version 2) that TF-A's BL2 loads and Hafnium unpacks.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! 0x0000  header: magic "SPKG" (0x474b5053), version 2, pm_offset, pm_size, img_offset, img_size
//!         (six u32); the rest of the first page is zero. Hafnium writes the FF-A boot-info
//!         blob over this page when it loads the partition.
//! 0x1000  the partition manifest (DTB), zero-filled up to the image
//! 0x4000  the image (raw binary; the manifest's entrypoint-offset points here)
//! ```
//!
//! These are the offsets TF-A's `sptool` uses by default; both must be 4 KiB aligned, and the
//! manifest must fit between them (at most 0x3000 bytes).

use std::fmt;

/// "SPKG", little-endian.
pub const MAGIC: u32 = 0x474b_5053;
/// Package format version.
pub const VERSION: u32 = 2;
/// Offset of the manifest DTB.
pub const PM_OFFSET: u32 = 0x1000;
/// Offset of the image.
pub const IMG_OFFSET: u32 = 0x4000;
/// Size of the header (six u32).
pub const HEADER_SIZE: usize = 24;
/// Largest manifest that fits between [`PM_OFFSET`] and [`IMG_OFFSET`].
pub const MAX_MANIFEST_SIZE: usize = 0x3000;
const _: () = assert!(MAX_MANIFEST_SIZE == 0x3000 && IMG_OFFSET - PM_OFFSET == 0x3000);
/// Flattened device tree magic (big-endian at offset 0 of a DTB).
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Package alignment unit.
const PAGE: u32 = 0x1000;

/// The package header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`VERSION`].
    pub version: u32,
    /// Offset of the manifest.
    pub pm_offset: u32,
    /// Size of the manifest.
    pub pm_size: u32,
    /// Offset of the image.
    pub img_offset: u32,
    /// Size of the image.
    pub img_size: u32,
}

impl Header {
    /// The header as its 24 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        let words = [
            self.magic,
            self.version,
            self.pm_offset,
            self.pm_size,
            self.img_offset,
            self.img_size,
        ];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Reads a header from the first 24 bytes of `bytes` (no validation).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let head = bytes.get(..HEADER_SIZE).ok_or(Error::Truncated)?;
        let mut words = head
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok().map(u32::from_le_bytes));
        let mut next = || words.next().ok_or(Error::Truncated);
        Ok(Self {
            magic: next()?,
            version: next()?,
            pm_offset: next()?,
            pm_size: next()?,
            img_offset: next()?,
            img_size: next()?,
        })
    }
}

/// Why a package could not be built or read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The manifest is larger than [`MAX_MANIFEST_SIZE`].
    ManifestTooLarge(usize),
    /// The manifest does not start with the FDT magic.
    NotADtb,
    /// The image is empty.
    EmptyImage,
    /// The package would not fit in 32-bit sizes.
    TooLarge,
    /// Fewer bytes than the header or the sizes it gives.
    Truncated,
    /// A header field is wrong.
    BadHeader(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ManifestTooLarge(n) => write!(
                f,
                "manifest DTB is {n} bytes; at most {MAX_MANIFEST_SIZE} fit between the \
                 manifest and image offsets"
            ),
            Self::NotADtb => write!(f, "manifest is not a DTB (no FDT magic)"),
            Self::EmptyImage => write!(f, "image is empty"),
            Self::TooLarge => write!(f, "package larger than 4 GiB"),
            Self::Truncated => write!(f, "package is truncated"),
            Self::BadHeader(why) => write!(f, "bad package header: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A package read back: its header and the two parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package<'a> {
    /// The header.
    pub header: Header,
    /// The manifest DTB.
    pub manifest: &'a [u8],
    /// The image.
    pub image: &'a [u8],
}

fn to_u32(n: usize) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| Error::TooLarge)
}

fn to_usize(n: u32) -> usize {
    // Hosts this tool runs on have at least 32-bit pointers.
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Builds the package of `manifest` (a DTB) and `image`.
pub fn build(manifest: &[u8], image: &[u8]) -> Result<Vec<u8>, Error> {
    if manifest.len() > MAX_MANIFEST_SIZE {
        return Err(Error::ManifestTooLarge(manifest.len()));
    }
    if manifest.get(..4) != Some(&FDT_MAGIC.to_be_bytes()[..]) {
        return Err(Error::NotADtb);
    }
    if image.is_empty() {
        return Err(Error::EmptyImage);
    }
    let img_size = to_u32(image.len())?;
    let total = IMG_OFFSET.checked_add(img_size).ok_or(Error::TooLarge)?;
    let header = Header {
        magic: MAGIC,
        version: VERSION,
        pm_offset: PM_OFFSET,
        pm_size: to_u32(manifest.len())?,
        img_offset: IMG_OFFSET,
        img_size,
    };
    let mut out = vec![0u8; to_usize(total)];
    out[..HEADER_SIZE].copy_from_slice(&header.to_bytes());
    let pm = to_usize(PM_OFFSET);
    out[pm..pm + manifest.len()].copy_from_slice(manifest);
    out[to_usize(IMG_OFFSET)..].copy_from_slice(image);
    Ok(out)
}

/// Reads a package: checks the header (magic, version, 4 KiB aligned offsets, manifest before
/// the image and clear of the header, parts inside `bytes`) and returns the parts.
pub fn parse(bytes: &[u8]) -> Result<Package<'_>, Error> {
    let header = Header::from_bytes(bytes)?;
    if header.magic != MAGIC {
        return Err(Error::BadHeader("magic is not SPKG"));
    }
    if header.version != VERSION {
        return Err(Error::BadHeader("version is not 2"));
    }
    if header.pm_offset % PAGE != 0 || header.img_offset % PAGE != 0 {
        return Err(Error::BadHeader("offsets must be 4 KiB aligned"));
    }
    if to_usize(header.pm_offset) < HEADER_SIZE {
        return Err(Error::BadHeader("manifest overlaps the header"));
    }
    let pm_end = header
        .pm_offset
        .checked_add(header.pm_size)
        .ok_or(Error::BadHeader("manifest size overflows"))?;
    if pm_end > header.img_offset {
        return Err(Error::BadHeader("manifest runs into the image"));
    }
    let img_end = header
        .img_offset
        .checked_add(header.img_size)
        .ok_or(Error::BadHeader("image size overflows"))?;
    let manifest = bytes
        .get(to_usize(header.pm_offset)..to_usize(pm_end))
        .ok_or(Error::Truncated)?;
    let image = bytes
        .get(to_usize(header.img_offset)..to_usize(img_end))
        .ok_or(Error::Truncated)?;
    Ok(Package {
        header,
        manifest,
        image,
    })
}

/// What Hafnium leaves at the load address of `package` (at `load_address`): the package with
/// a boot-info blob written over its header page, padded to a multiple of 8 bytes. The blob is
/// a header (signature 0x0FFA, version 1.2, blob size, descriptor size 32, one descriptor at
/// offset 32) and one standard FDT descriptor whose contents are the manifest's address.
pub fn loaded(package: &[u8], load_address: u64) -> Result<Vec<u8>, Error> {
    let pkg = parse(package)?;
    let manifest_at = load_address
        .checked_add(u64::from(pkg.header.pm_offset))
        .ok_or(Error::TooLarge)?;
    let blob_size = PAGE
        .checked_add(pkg.header.pm_size)
        .ok_or(Error::TooLarge)?;
    let mut out = package.to_vec();
    let page = out.get_mut(..to_usize(PAGE)).ok_or(Error::Truncated)?;
    page.fill(0);
    for (chunk, word) in page
        .chunks_exact_mut(4)
        .zip([0x0ffa, 0x0001_0002, blob_size, 32, 1, 32])
    {
        chunk.copy_from_slice(&u32::to_le_bytes(word));
    }
    // The descriptor: name[16] = 0, type 0 (standard, FDT), reserved 0, flags 0 (contents are
    // an address), size, contents.
    page[52..56].copy_from_slice(&pkg.header.pm_size.to_le_bytes());
    page[56..64].copy_from_slice(&manifest_at.to_le_bytes());
    out.resize(out.len().next_multiple_of(8), 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal well-formed DTB header followed by `extra` bytes (only the magic is checked).
    fn dtb(extra: usize) -> Vec<u8> {
        let mut v = FDT_MAGIC.to_be_bytes().to_vec();
        v.extend((0..extra).map(|i| u8::try_from(i % 251).unwrap() + 1));
        v
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn layout_is_byte_exact() {
        let manifest = dtb(100);
        let image = vec![0xaa; 5000];
        let pkg = build(&manifest, &image).unwrap();
        assert_eq!(pkg.len(), 0x4000 + 5000);
        assert_eq!(&pkg[0..4], b"SPKG");
        assert_eq!(le32(&pkg, 0), 0x474b_5053);
        assert_eq!(le32(&pkg, 4), 2);
        assert_eq!(le32(&pkg, 8), 0x1000);
        assert_eq!(le32(&pkg, 12), 104);
        assert_eq!(le32(&pkg, 16), 0x4000);
        assert_eq!(le32(&pkg, 20), 5000);
        assert!(
            pkg[24..0x1000].iter().all(|&b| b == 0),
            "header page zero filled"
        );
        assert_eq!(&pkg[0x1000..0x1000 + 104], &manifest[..]);
        assert!(
            pkg[0x1000 + 104..0x4000].iter().all(|&b| b == 0),
            "zero fill"
        );
        assert_eq!(&pkg[0x4000..], &image[..]);
    }

    #[test]
    fn the_loaded_package_has_boot_info_over_its_header() {
        let manifest = dtb(100);
        let pkg = build(&manifest, &[0xaa; 5001]).unwrap();
        let head = loaded(&pkg, 0x0e30_0000).unwrap();
        assert_eq!(head.len(), 0x4000 + 5008, "padded to 8 bytes");
        let words: Vec<u32> = (0..6).map(|i| le32(&head, i * 4)).collect();
        assert_eq!(words, [0x0ffa, 0x0001_0002, 0x1000 + 104, 32, 1, 32]);
        assert!(
            head[24..52].iter().all(|&b| b == 0),
            "FDT descriptor, no name"
        );
        assert_eq!(le32(&head, 52), 104);
        assert_eq!(
            u64::from_le_bytes(head[56..64].try_into().unwrap()),
            0x0e30_1000
        );
        assert!(head[64..0x1000].iter().all(|&b| b == 0));
        assert_eq!(&head[0x1000..0x4000 + 5001], &pkg[0x1000..]);
        assert_eq!(loaded(&pkg[..100], 0), Err(Error::Truncated));
    }

    #[test]
    fn parses_back_what_it_built() {
        let manifest = dtb(1000);
        let image: Vec<u8> = (0..70_000u32).map(|i| (i * 7).to_le_bytes()[0]).collect();
        let pkg = build(&manifest, &image).unwrap();
        let parsed = parse(&pkg).unwrap();
        assert_eq!(parsed.manifest, &manifest[..]);
        assert_eq!(parsed.image, &image[..]);
        assert_eq!(
            parsed.header,
            Header {
                magic: MAGIC,
                version: 2,
                pm_offset: 0x1000,
                pm_size: 1004,
                img_offset: 0x4000,
                img_size: 70_000,
            }
        );
        assert_eq!(
            Header::from_bytes(&parsed.header.to_bytes()).unwrap(),
            parsed.header
        );
    }

    #[test]
    fn largest_manifest_fits_and_one_more_byte_is_refused() {
        let image = [1u8; 16];
        let fits = dtb(MAX_MANIFEST_SIZE - 4);
        assert_eq!(fits.len(), 0x3000);
        let pkg = build(&fits, &image).unwrap();
        assert_eq!(parse(&pkg).unwrap().manifest.len(), 0x3000);
        let too_big = dtb(MAX_MANIFEST_SIZE - 3);
        assert_eq!(
            build(&too_big, &image),
            Err(Error::ManifestTooLarge(0x3001))
        );
    }

    #[test]
    fn refuses_non_dtb_and_empty_image() {
        assert_eq!(build(b"not a dtb", &[1]), Err(Error::NotADtb));
        assert_eq!(build(&[], &[1]), Err(Error::NotADtb));
        assert_eq!(build(&dtb(8), &[]), Err(Error::EmptyImage));
    }

    #[test]
    fn parse_rejects_each_bad_header_field() {
        let good = build(&dtb(60), &[7u8; 100]).unwrap();
        let with = |at: usize, value: u32| {
            let mut p = good.clone();
            p[at..at + 4].copy_from_slice(&value.to_le_bytes());
            p
        };
        assert!(parse(&good).is_ok());
        assert!(matches!(parse(&with(0, 0x1234)), Err(Error::BadHeader(_))));
        assert!(matches!(parse(&with(4, 1)), Err(Error::BadHeader(_))));
        assert!(matches!(parse(&with(8, 0x1800)), Err(Error::BadHeader(_))));
        assert!(matches!(parse(&with(8, 0)), Err(Error::BadHeader(_))));
        assert!(matches!(parse(&with(12, 0x3001)), Err(Error::BadHeader(_))));
        assert!(matches!(
            parse(&with(12, u32::MAX)),
            Err(Error::BadHeader(_))
        ));
        assert!(matches!(parse(&with(16, 0x4800)), Err(Error::BadHeader(_))));
        assert!(matches!(
            parse(&with(20, u32::MAX)),
            Err(Error::BadHeader(_))
        ));
        assert_eq!(parse(&with(20, 101)), Err(Error::Truncated));
        assert_eq!(parse(&good[..good.len() - 1]), Err(Error::Truncated));
        assert_eq!(parse(&good[..10]), Err(Error::Truncated));
    }
}
