//// Find beamlet nodes registered in EPMD (the local one and remote hosts) and connect to them.

import gleam/option.{type Option, None}

pub type DiscoveryOptions {
  DiscoveryOptions(hosts: List(String), pattern: Option(String), interval: Int)
}

/// A running discovery process (linked to the process that started it).
pub type Discovery

/// Local EPMD only, any name, every 5 s.
pub fn default_options() -> DiscoveryOptions {
  DiscoveryOptions(hosts: [], pattern: None, interval: 5000)
}

@external(erlang, "beamlet_gleam_ffi", "discovery_start")
pub fn start(options: DiscoveryOptions) -> Result(Discovery, String)

/// The beamlet nodes found so far.
@external(erlang, "beamlet_gleam_ffi", "discovery_found")
pub fn found(discovery: Discovery) -> List(String)

/// Poll now and return the beamlet nodes found.
@external(erlang, "beamlet_gleam_ffi", "discovery_refresh")
pub fn refresh(discovery: Discovery) -> List(String)

@external(erlang, "beamlet_gleam_ffi", "discovery_stop")
pub fn stop(discovery: Discovery) -> Nil
