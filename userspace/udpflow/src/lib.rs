//! Numbered UDP flows: the datagram format and a sink's account of a flow,
//! shared by the `udpflow` sender and sink (and testable on the host).

pub mod datagram;
pub mod tally;
