//! The start-up steps on a scripted platform: the FF-A calls in order, what each answer
//! leads to, and when the platform is asked for what.

use alloc::{string::String, vec::Vec};
use std::sync::{Arc, Mutex};

use super::*;
use crate::{
    bootinfo::BootInfoError, devices::rng::CountingEntropy, scripted::NoMapper, scripted::Scripted,
};

const VERSION: u32 = 0x8400_0063;
const ID_GET: u32 = 0x8400_0069;
const RXTX_MAP_64: u32 = 0xc400_0066;
const MSG_WAIT: u32 = 0x8400_006b;
const FEATURES: u32 = 0x8400_0064;
const SUCCESS_32: u64 = 0x8400_0061;
const ERROR_32: u64 = 0x8400_0060;

/// An SPMC speaking `version` (w0 of the FFA_VERSION answer); `refuse` names one call it
/// answers with FFA_ERROR(DENIED). FFA_MSG_WAIT always fails, ending the loop.
fn spmc(version: u64, refuse: Option<u32>) -> Scripted {
    Scripted::new(move |regs| {
        let mut r = [0u64; 18];
        let fid = ffa::conduit::low32(regs[0]);
        if Some(fid) == refuse || fid == MSG_WAIT {
            r[0] = ERROR_32;
            r[2] = u64::from((-6i32).cast_unsigned()); // DENIED
            return r;
        }
        match fid {
            VERSION => r[0] = version,
            ID_GET => {
                r[0] = SUCCESS_32;
                r[2] = 0x8001;
            }
            _ => r[0] = SUCCESS_32,
        }
        r
    })
}

/// `calls`, then the message loop's FFA_MSG_WAIT, failing every time until the loop gives up.
fn with_waits(calls: &[u32]) -> Vec<u32> {
    let waits = usize::try_from(crate::partition::MAX_WAIT_FAILURES).unwrap();
    calls
        .iter()
        .copied()
        .chain([MSG_WAIT; 1].repeat(waits))
        .collect()
}

/// What the platform was asked, in order.
type Events = Arc<Mutex<Vec<String>>>;

struct Test {
    conduit: Option<Scripted>,
    manifest: Result<Manifest, BootInfoError>,
    entropy: bool,
    events: Events,
}

impl Test {
    fn new(conduit: Scripted, rxtx: bool) -> Self {
        let manifest = Manifest {
            boot_info_version: Version(1, 2),
            fdt_len: 1152,
            ffa_version: Some(0x10002),
            rxtx: rxtx.then_some(RxTxRegions {
                rx: 0x0e50_0000..0x0e50_1000,
                tx: 0x0e50_1000..0x0e50_2000,
            }),
            messaging_method: Some(0x205),
            exec_ctx_count: None,
        };
        Self {
            conduit: Some(conduit),
            manifest: Ok(manifest),
            entropy: true,
            events: Events::default(),
        }
    }

    fn note(&self, what: &str) {
        self.events.lock().unwrap().push(what.into());
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl Platform for Test {
    type Conduit = Scripted;
    type Mapper = NoMapper;
    type Entropy = CountingEntropy;

    fn boot_info(&mut self) -> Result<Manifest, BootInfoError> {
        self.note("boot_info");
        self.manifest.clone()
    }

    fn memory(&mut self, rxtx: Option<&RxTxRegions>) -> Result<NoMapper, StartError> {
        self.note(if rxtx.is_some() {
            "memory(rxtx)"
        } else {
            "memory"
        });
        Ok(NoMapper)
    }

    fn conduit(&mut self, rxtx: Option<&RxTxRegions>) -> Option<(Scripted, Buffers)> {
        self.note("conduit");
        let buffers = match rxtx {
            Some(_) => Buffers::Manifest,
            None => Buffers::Own {
                tx: 0x1000,
                rx: 0x2000,
                pages: 1,
            },
        };
        Some((self.conduit.take()?, buffers))
    }

    fn console(&mut self, spmc: bool) {
        self.note(if spmc {
            "console(ffa)"
        } else {
            "console(uart)"
        });
    }

    fn no_spmc_reason(&self) -> &'static str {
        "test"
    }

    fn entropy(&mut self) -> Option<(CountingEntropy, &'static str)> {
        self.note("entropy");
        self.entropy
            .then(|| (CountingEntropy::default(), "counting"))
    }

    fn running(&mut self) {
        self.note("running");
    }
}

#[test]
fn with_manifest_buffers_the_calls_are_version_id_get_then_msg_wait() {
    let conduit = spmc(0x0001_0003, None);
    let mut p = Test::new(conduit.clone(), true);
    let e = start(&mut p, BusConfig::default());
    assert!(matches!(e, StartError::Loop(_)), "{e}");
    assert_eq!(
        conduit.function_ids(),
        with_waits(&[VERSION, ID_GET, FEATURES]),
        "FFA_FEATURES(FFA_MSG_SEND2): indirect messages if the SPMC has them"
    );
    assert_eq!(
        p.events(),
        [
            "boot_info",
            "memory(rxtx)",
            "conduit",
            "console(ffa)",
            "entropy",
            "running"
        ]
    );
    // FFA_VERSION offers 1.2.
    assert_eq!(conduit.calls()[0][1], 0x0001_0002);
}

#[test]
fn a_manifest_without_indirect_messaging_keeps_the_partition_on_direct_messages() {
    let conduit = spmc(0x0001_0002, None);
    let mut p = Test::new(conduit.clone(), true);
    if let Ok(m) = &mut p.manifest {
        m.messaging_method = Some(0x201);
    }
    start(&mut p, BusConfig::default());
    // No FFA_FEATURES(FFA_MSG_SEND2): indirect messages are off without asking the SPMC.
    assert_eq!(conduit.function_ids(), with_waits(&[VERSION, ID_GET]));
}

#[test]
fn without_manifest_buffers_the_platform_s_own_are_mapped() {
    for manifest in [false, true] {
        let conduit = spmc(0x0001_0002, None);
        let mut p = Test::new(conduit.clone(), false);
        if manifest {
            p.manifest = Err(BootInfoError::NoManifest);
        }
        start(&mut p, BusConfig::default());
        assert_eq!(
            conduit.function_ids(),
            with_waits(&[VERSION, ID_GET, RXTX_MAP_64, FEATURES])
        );
        let map = conduit.calls()[2];
        assert_eq!(
            (map[1], map[2], map[3]),
            (0x1000, 0x2000, 1),
            "tx, rx, pages"
        );
    }
}

#[test]
fn no_spmc_stops_after_the_version_call_with_the_uart_console() {
    let conduit = Scripted::not_supported();
    let mut p = Test::new(conduit.clone(), true);
    assert_eq!(start(&mut p, BusConfig::default()), StartError::NoSpmc);
    assert_eq!(conduit.function_ids(), [VERSION]);
    assert_eq!(
        p.events(),
        ["boot_info", "memory(rxtx)", "conduit", "console(uart)"]
    );
}

#[test]
fn an_spmc_below_1_2_or_refusing_a_call_is_fatal() {
    let conduit = spmc(0x0001_0001, None);
    let mut p = Test::new(conduit.clone(), true);
    assert_eq!(
        start(&mut p, BusConfig::default()).to_string(),
        "ffa: FF-A 1.2 is needed"
    );
    assert_eq!(conduit.function_ids(), [VERSION]);

    for (refused, rxtx, what) in [
        (ID_GET, true, "FFA_ID_GET"),
        (RXTX_MAP_64, false, "FFA_RXTX_MAP"),
    ] {
        let conduit = spmc(0x0001_0002, Some(refused));
        let mut p = Test::new(conduit.clone(), rxtx);
        let e = start(&mut p, BusConfig::default());
        assert!(matches!(&e, StartError::Fatal(f) if f.what == "ffa"), "{e}");
        assert!(
            e.to_string().starts_with(&alloc::format!("ffa: {what}: ")),
            "{e}"
        );
        assert_eq!(conduit.function_ids().last(), Some(&refused));
        assert!(!p.events().contains(&"running".into()));
    }
}

#[test]
fn no_buffers_is_fatal_before_any_call() {
    let conduit = spmc(0x0001_0002, None);
    let mut p = Test::new(conduit.clone(), true);
    p.conduit = None;
    let e = start(&mut p, BusConfig::default());
    assert_eq!(e.to_string(), "rx/tx: no buffers");
    assert!(conduit.calls().is_empty());
}
