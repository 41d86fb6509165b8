//! `network.{incoming,outgoing}.{bytes,packets,errors}` (cumulative) per interface, from
//! `/proc/net/dev`. Every interface the kernel lists is reported, loopback included.

use procfs_core::net::InterfaceDeviceStatus;

use crate::host::Host;
use crate::pollster::{HostPollster, Measurement, PollResult};

/// The `network` pollster.
pub struct Network;

impl HostPollster for Network {
    fn poll(&self, host: &Host) -> PollResult {
        let dev: InterfaceDeviceStatus = host.parse("/proc/net/dev")?;
        let mut interfaces: Vec<_> = dev.0.into_values().collect();
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::with_capacity(interfaces.len() * 6);
        for i in interfaces {
            let resource = format!("{}/{}", host.name(), i.name);
            let values = [
                ("network.incoming.bytes", i.recv_bytes),
                ("network.outgoing.bytes", i.sent_bytes),
                ("network.incoming.packets", i.recv_packets),
                ("network.outgoing.packets", i.sent_packets),
                ("network.incoming.errors", i.recv_errs),
                ("network.outgoing.errors", i.sent_errs),
            ];
            for (meter, value) in values {
                out.push(
                    Measurement::new(meter, value as f64, &resource)
                        .with("interface", i.name.as_str()),
                );
            }
        }
        Ok(out)
    }
}
