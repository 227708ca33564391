//! Driving the partition by hand in the simulated world: the helpers the bus, isolation,
//! fault and fairness tests share. Each works over any conduit, so the threaded world
//! (`SimSystem`) and the inline one use the same code.

use ffa::{Conduit, sim::VmEndpoint};
use virtio_msg::{
    device::{QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    driver::{DeviceClient, DriverError},
};
use vmsg_host::{Connection, SimSystem, session::SharedArea, virtqueue::DriverQueue};

/// A connection from a simulated endpoint, over any conduit.
pub type Conn<C> = Connection<C, VmEndpoint>;

/// Starts the threaded simulated world.
///
/// # Panics
/// If it does not start.
pub fn system() -> SimSystem {
    SimSystem::start().expect("simulated world starts")
}

/// The partition is alive and touched no memory it was not given.
///
/// # Panics
/// If it faulted or died.
pub fn healthy(sys: &SimSystem) {
    assert!(sys.faults().is_empty(), "faults: {:?}", sys.faults());
    assert!(sys.world().sp_alive(sys.sp_id()), "the partition died");
}

/// Shares `pages` fresh pages of the endpoint as a new area.
///
/// # Panics
/// If AREA_SHARE is refused.
pub fn share<C: Conduit>(conn: &mut Conn<C>, pages: u32) -> SharedArea {
    let pa = conn.platform().alloc(pages);
    conn.session().share(pa, pages).expect("AREA_SHARE")
}

/// Brings device 0 to FEATURES_OK and tries to set its queue 0 (16 entries) at bus address
/// `desc` (rings at +0x400 and +0x800).
pub fn try_queue<C: Conduit>(conn: &mut Conn<C>, desc: u64) -> Result<(), DriverError> {
    let layout = conn.session().info().dialect.layout();
    let mut client = DeviceClient::new(conn.session(), 0, layout)?;
    client.initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM)?;
    client.set_vqueue(
        0,
        QueueConfig {
            size: 16,
            desc_addr: desc,
            driver_addr: desc + 0x400,
            device_addr: desc + 0x800,
        },
    )
}

/// A running rng (device 0) with its queue, the ring's area and a data area.
pub struct Live {
    /// The driver's side of queue 0.
    pub queue: DriverQueue,
    /// The area holding the rings.
    pub ring: SharedArea,
    /// The data area.
    pub buffer: SharedArea,
}

/// Brings device 0 up with a `size`-entry queue in a fresh `ring_pages`-page area and a fresh
/// `buffer_pages`-page data area (nothing posted).
///
/// # Panics
/// If any step is refused.
pub fn running<C: Conduit>(
    conn: &mut Conn<C>,
    size: u16,
    ring_pages: u32,
    buffer_pages: u32,
) -> Live {
    let ring = share(conn, ring_pages);
    let buffer = share(conn, buffer_pages);
    let layout = conn.session().info().dialect.layout();
    let mut client = DeviceClient::new(conn.session(), 0, layout).unwrap();
    client
        .initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM)
        .unwrap();
    let queue = DriverQueue::new(conn.platform(), size, ring.pa, ring.bus(0)).unwrap();
    let mut client = DeviceClient::new(conn.session(), 0, layout).unwrap();
    client.set_vqueue(0, queue.queue_config()).unwrap();
    client.driver_ok().unwrap();
    Live {
        queue,
        ring,
        buffer,
    }
}

/// A running rng (16 entries, one page each for rings and data) with one 4 KiB request posted
/// and published, not kicked.
///
/// # Panics
/// If any step is refused.
pub fn live_queue<C: Conduit>(conn: &mut Conn<C>) -> Live {
    let mut live = running(conn, 16, 1, 1);
    live.queue
        .add(conn.platform(), &[], &[(live.buffer.bus(0), 4096)])
        .unwrap();
    live.queue.publish(conn.platform()).unwrap();
    live
}

/// EVENT_AVAIL for device 0, queue 0.
///
/// # Panics
/// If it is not acknowledged.
pub fn kick<C: Conduit>(conn: &mut Conn<C>) {
    let layout = conn.session().info().dialect.layout();
    DeviceClient::new(conn.session(), 0, layout)
        .unwrap()
        .notify_avail(0)
        .expect("EVENT_AVAIL acknowledged");
}

/// Device 0's status.
///
/// # Panics
/// If GET_DEVICE_STATUS fails.
pub fn device_status<C: Conduit>(conn: &mut Conn<C>) -> u32 {
    let layout = conn.session().info().dialect.layout();
    DeviceClient::new(conn.session(), 0, layout)
        .unwrap()
        .get_status()
        .unwrap()
}
