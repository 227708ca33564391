//! The partition core: per-endpoint bus instances, the device registry and the message loop.
//!
//! The same code runs in the real partition (over `smc`) and in the simulated FF-A world: it
//! only talks FF-A through [`ffa::Ffa`] and reaches normal-world memory through an
//! [`ffa::memory::NsMapper`].

use alloc::collections::BTreeMap;

use crate::registry::DeviceFactory;
use ffa::{
    Conduit, Ffa, VIRTIO_MSG_DEVICE_UUID,
    arm_ffa::{
        FfaError, Interface,
        interface_args::{DirectMsg2Args, DirectMsgArgs, VmAvailabilityStatus},
    },
    bus::{self, BusConfig, BusInstance, BusServices, FfaServices, MAX_MSG_SIZE, Reply},
    memory::NsMapper,
};

/// Most driver endpoints served at once (Hafnium supports 16 VMs).
pub const MAX_ENDPOINTS: usize = 16;

/// The partition: one [`BusInstance`] per calling endpoint, created on first contact.
pub struct Partition<F: DeviceFactory> {
    own_id: u16,
    factory: F,
    config: BusConfig,
    instances: BTreeMap<u16, BusInstance>,
}

impl<F: DeviceFactory> Partition<F> {
    /// A partition with endpoint id `own_id` whose devices come from `factory`.
    pub fn new(own_id: u16, factory: F, config: BusConfig) -> Self {
        Self {
            own_id,
            factory,
            config,
            instances: BTreeMap::new(),
        }
    }

    /// This partition's endpoint id.
    pub fn own_id(&self) -> u16 {
        self.own_id
    }

    /// The bus instance of endpoint `vm`, if it has talked to us.
    pub fn instance(&self, vm: u16) -> Option<&BusInstance> {
        self.instances.get(&vm)
    }

    /// Number of endpoints with state here.
    pub fn endpoints(&self) -> usize {
        self.instances.len()
    }

    /// Handles one FFA_MSG_SEND_DIRECT_REQ2 payload from `src` for service `uuid`; returns
    /// the DIRECT_RESP2 payload, or the FF-A error to answer with.
    pub fn handle_req2(
        &mut self,
        src: u16,
        uuid: ffa::arm_ffa::Uuid,
        payload: &[u64; bus::PAYLOAD_REGS],
        services: &mut dyn BusServices,
    ) -> Result<[u64; bus::PAYLOAD_REGS], FfaError> {
        if uuid != VIRTIO_MSG_DEVICE_UUID && !uuid.is_nil() {
            log::debug!("direct request from {src:#x} for unknown service {uuid}");
            return Err(FfaError::InvalidParameters);
        }
        if !self.instances.contains_key(&src) {
            if self.instances.len() >= MAX_ENDPOINTS {
                log::warn!("no room for a bus instance for endpoint {src:#x}");
                return Err(FfaError::NoMemory);
            }
            let devices = self.factory.create(src);
            log::info!(
                "endpoint {src:#x}: new bus instance with {} devices",
                devices.len()
            );
            self.instances
                .insert(src, BusInstance::new(src, devices, self.config));
        }
        let instance = self
            .instances
            .get_mut(&src)
            .ok_or(FfaError::InvalidParameters)?;
        let frame = bus::regs_to_frame(payload);
        let mut out = [0u8; MAX_MSG_SIZE];
        match instance.handle(&frame, &mut out, services) {
            Reply::Frame(n) => Ok(bus::frame_to_regs(out.get(..n).unwrap_or_default())),
            Reply::Busy => Ok([0; bus::PAYLOAD_REGS]),
        }
    }

    /// Endpoint `vm` is gone: reset its devices, relinquish its memory, forget it.
    pub fn endpoint_destroyed(&mut self, vm: u16, services: &mut dyn BusServices) {
        if let Some(mut instance) = self.instances.remove(&vm) {
            log::info!("endpoint {vm:#x} destroyed: dropping its bus instance");
            instance.reset(services);
        }
    }
}

/// The message loop: FFA_MSG_WAIT, then answer every message and wait for the next, until a
/// call fails (the SPMC never makes it fail in normal operation; the simulated world does when
/// it shuts down).
pub fn run<C: Conduit, M: NsMapper, F: DeviceFactory>(
    ffa: &mut Ffa<C>,
    mapper: &mut M,
    partition: &mut Partition<F>,
) -> Result<(), ffa::Error> {
    let own_id = partition.own_id();
    let mut msg = ffa.msg_wait()?;
    loop {
        let answer = match msg {
            Interface::MsgSendDirectReq2 {
                src_id,
                dst_id,
                uuid,
                args,
            } if dst_id == own_id => {
                let mut services = FfaServices {
                    ffa: &mut *ffa,
                    mapper: &mut *mapper,
                    own_id,
                };
                // Every request gets DIRECT_RESP2: an SPMC may treat FFA_ERROR from a running
                // partition as an abort. Requests we cannot serve get an all-zero payload,
                // which a G3 driver reads as busy and a G2 driver as a failed exchange.
                let regs = partition
                    .handle_req2(src_id, uuid, &args.0, &mut services)
                    .unwrap_or_else(|code| {
                        log::warn!("request from {src_id:#x} refused: {code:?}");
                        [0; bus::PAYLOAD_REGS]
                    });
                Interface::MsgSendDirectResp2 {
                    src_id: own_id,
                    dst_id: src_id,
                    args: DirectMsg2Args(regs),
                }
            }
            Interface::MsgSendDirectReq {
                src_id,
                dst_id,
                args: DirectMsgArgs::VmDestructed { vm_id, .. },
            } => {
                let mut services = FfaServices {
                    ffa: &mut *ffa,
                    mapper: &mut *mapper,
                    own_id,
                };
                partition.endpoint_destroyed(vm_id, &mut services);
                Interface::MsgSendDirectResp {
                    src_id: dst_id,
                    dst_id: src_id,
                    args: DirectMsgArgs::VmDestructedAck {
                        sp_status: VmAvailabilityStatus::Success,
                    },
                }
            }
            Interface::MsgSendDirectReq {
                src_id,
                dst_id,
                args: DirectMsgArgs::VmCreated { .. },
            } => Interface::MsgSendDirectResp {
                src_id: dst_id,
                dst_id: src_id,
                args: DirectMsgArgs::VmCreatedAck {
                    sp_status: VmAvailabilityStatus::Success,
                },
            },
            Interface::MsgSendDirectReq {
                src_id,
                dst_id,
                args,
            } => {
                let _ = args;
                log::warn!("direct request from {src_id:#x} not served (not a virtio-msg request)");
                Interface::MsgSendDirectResp {
                    src_id: dst_id,
                    dst_id: src_id,
                    args: DirectMsgArgs::Args64([0; 15]),
                }
            }
            other => {
                log::warn!(
                    "unexpected message (function {:#x}); waiting for the next one",
                    ffa.last_answer()[0]
                );
                let _ = other;
                msg = ffa.msg_wait()?;
                continue;
            }
        };
        msg = ffa.call(&answer)?;
    }
}

#[cfg(test)]
mod tests {
    use ffa::{
        bus::{RetrievedArea, ServiceError, msg},
        memory::{MapError, ShareKind},
    };

    use super::*;
    use crate::{devices::rng::CountingEntropy, registry::StandardDevices};

    /// Services that refuse all memory (the tests here need none).
    struct NoMemory;

    impl BusServices for NoMemory {
        fn retrieve(
            &mut self,
            _: u16,
            _: u64,
            _: u64,
            _: ShareKind,
        ) -> Result<RetrievedArea, ServiceError> {
            Err(ServiceError::Refused)
        }
        fn relinquish(&mut self, _: &RetrievedArea) -> Result<(), ServiceError> {
            Ok(())
        }
        fn read(&self, _: u64, _: &mut [u8]) -> Result<(), MapError> {
            Err(MapError::NotMapped)
        }
        fn write(&self, _: u64, _: &[u8]) -> Result<(), MapError> {
            Err(MapError::NotMapped)
        }
        fn notify(&mut self, _: u16, _: u16) -> Result<(), ServiceError> {
            Ok(())
        }
    }

    fn partition() -> Partition<StandardDevices<CountingEntropy>> {
        Partition::new(
            0x8001,
            StandardDevices::new(Some(CountingEntropy::default())),
            BusConfig::default(),
        )
    }

    /// A G2 VERSION request (16 bytes) as payload registers.
    fn g2_version() -> [u64; bus::PAYLOAD_REGS] {
        let mut frame = [0u8; 16];
        msg::write_bus_frame(
            &mut frame,
            false,
            msg::VERSION,
            0,
            1,
            &[0, 0, 1, 0, 1, 0, 0, 0],
        )
        .unwrap();
        bus::frame_to_regs(&frame)
    }

    #[test]
    fn one_instance_per_endpoint_and_a_bound_on_endpoints() {
        let mut p = partition();
        for vm in 0..u16::try_from(MAX_ENDPOINTS).unwrap() {
            let answer = p
                .handle_req2(vm, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory)
                .unwrap();
            let frame = bus::regs_to_frame(&answer);
            assert_eq!(&frame[..2], &[0x03, msg::VERSION]);
            assert_eq!(p.instance(vm).unwrap().device_count(), 1);
        }
        assert_eq!(p.endpoints(), MAX_ENDPOINTS);
        assert_eq!(
            p.handle_req2(0x7000, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory),
            Err(FfaError::NoMemory)
        );
        // Known endpoints are still served.
        assert!(
            p.handle_req2(3, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory)
                .is_ok()
        );
        // A destroyed endpoint frees its slot.
        p.endpoint_destroyed(3, &mut NoMemory);
        assert!(p.instance(3).is_none());
        assert!(
            p.handle_req2(0x7000, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory)
                .is_ok()
        );
    }

    #[test]
    fn other_services_are_refused_and_nil_uuid_accepted() {
        let mut p = partition();
        let other = ffa::arm_ffa::Uuid::from_u128(0x1234);
        assert_eq!(
            p.handle_req2(1, other, &g2_version(), &mut NoMemory),
            Err(FfaError::InvalidParameters)
        );
        assert_eq!(p.endpoints(), 0);
        assert!(
            p.handle_req2(1, ffa::arm_ffa::Uuid::nil(), &g2_version(), &mut NoMemory)
                .is_ok()
        );
    }

    #[test]
    fn no_entropy_no_devices() {
        let mut p = Partition::new(
            0x8001,
            StandardDevices::<CountingEntropy>::new(None),
            BusConfig::default(),
        );
        p.handle_req2(1, VIRTIO_MSG_DEVICE_UUID, &g2_version(), &mut NoMemory)
            .unwrap();
        assert_eq!(p.instance(1).unwrap().device_count(), 0);
    }
}
