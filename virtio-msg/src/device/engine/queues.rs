//! The virtqueue and SHM requests of the engine: GET_VQUEUE, SET_VQUEUE (with its checks),
//! RESET_VQUEUE and GET_SHM, as a second `impl` block of [`DeviceTransport`].

use super::{DeviceTransport, Queue, Refusal};
use crate::{
    device::model::{QueueConfig, VIRTIO_F_RING_PACKED},
    layout::Layout,
    transport::{SET_VQUEUE_OP_ENABLE, TransportResponse, VQUEUE_FLAG_ENABLED, status},
};

impl DeviceTransport {
    /// GET_VQUEUE. A queue that does not exist reads as all zero but the index; an
    /// unconfigured one as its max size only.
    pub(super) fn vqueue(&self, index: u32) -> TransportResponse<'static> {
        let mut response = TransportResponse::Vqueue {
            index,
            max_size: 0,
            cur_size: 0,
            flags: 0,
            desc_addr: 0,
            driver_addr: 0,
            device_addr: 0,
        };
        let Some(queue) = usize::try_from(index).ok().and_then(|i| self.queues.get(i)) else {
            return response;
        };
        let max = self.device.queue_max_size(index);
        if max == 0 {
            return response;
        }
        if let TransportResponse::Vqueue {
            max_size,
            cur_size,
            flags,
            desc_addr,
            driver_addr,
            device_addr,
            ..
        } = &mut response
        {
            *max_size = u32::from(max);
            if let Some(c) = queue.config {
                *cur_size = u32::from(c.size);
                *flags = match self.layout {
                    Layout::V1Review => VQUEUE_FLAG_ENABLED,
                    Layout::Pr28 => 0,
                };
                *desc_addr = c.desc_addr;
                *driver_addr = c.driver_addr;
                *device_addr = c.device_addr;
            }
        }
        response
    }

    /// SET_VQUEUE; see the module docs for what a refusal does.
    pub(super) fn set_vqueue(&mut self, index: u32, flags: u32, size: u32, addrs: [u64; 3]) {
        let Some(slot) = usize::try_from(index)
            .ok()
            .filter(|&i| i < self.queues.len())
        else {
            log::debug!("SET_VQUEUE for queue {index}, which does not exist");
            return;
        };
        if self.queues.get(slot).is_some_and(|q| q.live) {
            log::debug!("SET_VQUEUE for live queue {index} (RESET_VQUEUE first): ignored");
            return;
        }
        let mut queue = Queue::default();
        match self.check_vqueue(index, flags, size, addrs) {
            Err(why) => log::debug!("SET_VQUEUE for queue {index} refused: {why}"),
            Ok(config) if self.active => match self.device.activate_queue(index, config) {
                Ok(()) => {
                    queue = Queue {
                        config: Some(config),
                        live: true,
                        pending: false,
                    };
                }
                Err(e) => log::info!("device refused late queue {index}: {e}"),
            },
            Ok(config) => queue.config = Some(config),
        }
        if let Some(q) = self.queues.get_mut(slot) {
            *q = queue;
        }
    }

    fn check_vqueue(
        &self,
        index: u32,
        flags: u32,
        size: u32,
        [desc_addr, driver_addr, device_addr]: [u64; 3],
    ) -> Result<QueueConfig, Refusal> {
        let wanted_flags = match self.layout {
            Layout::V1Review => SET_VQUEUE_OP_ENABLE,
            Layout::Pr28 => 0,
        };
        if flags != wanted_flags {
            return Err("unsupported flags");
        }
        if self.status & status::DEVICE_NEEDS_RESET != 0 {
            return Err("the device needs a reset");
        }
        if self.status & status::FEATURES_OK == 0 {
            return Err("features not negotiated yet (FEATURES_OK clear)");
        }
        let max = self.device.queue_max_size(index);
        if max == 0 {
            return Err("the queue does not exist");
        }
        let size = u16::try_from(size).map_err(|_| "size above the maximum")?;
        if size == 0 || size > max {
            return Err("size 0 or above the maximum");
        }
        let packed = self.driver_features & VIRTIO_F_RING_PACKED != 0;
        if !packed && !size.is_power_of_two() {
            return Err("split-ring size not a power of two");
        }
        // (address, alignment, area length) of the descriptor table, driver and device areas.
        // `n` is at most 32768, so no length comes near saturating; if one did, the wrap check
        // below would refuse it.
        let n = u64::from(size);
        let areas = if packed {
            [
                (desc_addr, 16, 16 * n),
                (driver_addr, 4, 4),
                (device_addr, 4, 4),
            ]
        } else {
            [
                (desc_addr, 16, 16 * n),
                (driver_addr, 2, (2 * n).saturating_add(6)),
                (device_addr, 4, (8 * n).saturating_add(6)),
            ]
        };
        for (addr, align, len) in areas {
            if addr == 0 || !addr.is_multiple_of(align) {
                return Err("ring address zero or misaligned");
            }
            if addr.checked_add(len).is_none() {
                return Err("ring wraps around the address space");
            }
        }
        Ok(QueueConfig {
            size,
            desc_addr,
            driver_addr,
            device_addr,
        })
    }

    /// RESET_VQUEUE: the queue becomes unconfigured; an active device drops its state for it
    /// (`reset_queue`) before the response goes out. Accepted whether or not RING_RESET was
    /// negotiated: the G2 driver sends it for every queue on teardown.
    pub(super) fn reset_vqueue(&mut self, index: u32) {
        let Some(queue) = usize::try_from(index)
            .ok()
            .and_then(|i| self.queues.get_mut(i))
        else {
            log::debug!("RESET_VQUEUE for queue {index}, which does not exist");
            return;
        };
        *queue = Queue::default();
        if self.active {
            self.device.reset_queue(index);
        }
    }

    /// GET_SHM: the device's region, or length 0. In the Dec-2025 layout a region whose
    /// address or length needs more than 32 bits is reported as absent.
    pub(super) fn shm(&self, index: u32) -> TransportResponse<'static> {
        let region = self.device.shm_region(index).filter(|&(address, length)| {
            length != 0
                && (self.layout == Layout::V1Review
                    || (u32::try_from(address).is_ok() && u32::try_from(length).is_ok()))
        });
        let (address, length) = region.unwrap_or((0, 0));
        TransportResponse::Shm {
            index,
            length,
            address,
        }
    }
}
