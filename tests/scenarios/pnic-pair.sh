#!/bin/bash
# A pnic pair joins two namespaces like a veth pair, through device memory,
# DMA engines and a modelled bus:
# 1. The carrier follows the far end; MTU 9000 (and no more), no bus: ping,
#    iperf3 TCP, 64 MiB through TCP whose sha256 matches.
# 2. Both NICs on one bus: the bus and NIC counters hold exactly the bytes
#    the devices sent and received.
# 3. 1.6 KiB of receive memory and a UDP flood: without flow control,
#    frames lost to full receive memory are counted; with it (the default),
#    none are lost there and the sender is held back instead (counted). Ping
#    works again afterwards, and the memory in use drains to zero. With
#    receive checksum offload off, the NIC computes the checksums the
#    sender left to it and 8 MiB arrive intact.
# 4. Deleting a namespace gives its pnic back to the initial one (a pnic has
#    no link ops, like a physical NIC); a pair removed during traffic, then
#    the module unloaded: no oops, no leak (the harness checks the log and
#    kmemleak).
source "${BASH_SOURCE[0]%/*}/../guest/lib.sh"
CFG=/sys/kernel/config
P=$CFG/pnic
cleanup() {
  local d
  for d in "$P"/*/; do
    [[ -d $d ]] && { echo 0 >"$d/power"; rmdir "$d"; }
  done
  for d in "$CFG"/pnic_bus/*/; do
    [[ -d $d ]] && rmdir "$d"
  done
  ip netns del pn1 2>/dev/null
  ip netns del pn2 2>/dev/null
  rmmod pnic 2>/dev/null
  return 0
}
trap cleanup EXIT

# pstat PAIR KEY: one line of a pair's stats.
pstat() { kv "$P/$1/stats" "$2"; }

# power_on PAIR [SETTING=VALUE...]: a powered pair PAIRa/PAIRb.
power_on() {
  local pair=$1 kv
  shift
  mkdir "$P/$pair" || fail "mkdir $pair"
  echo "${pair}a" >"$P/$pair/name_a" && echo "${pair}b" >"$P/$pair/name_b" || fail "names"
  for kv in "$@"; do
    echo "${kv#*=}" >"$P/$pair/${kv%%=*}" || fail "$pair: ${kv%%=*} = ${kv#*=} refused"
  done
  echo 1 >"$P/$pair/power" || fail "power on $pair"
  [[ $(<"$P/$pair/devices") == "${pair}a ${pair}b" ]] || fail "devices: '$(<"$P/$pair/devices")'"
}

# into_namespaces PAIR MTU N: end a into pn1 as 10.77.N.1, end b into pn2
# as 10.77.N.2, both up at MTU (one ip process per namespace: each process
# costs seconds in this guest).
into_namespaces() {
  local pair=$1 mtu=$2 n=$3
  printf 'link set %s netns pn1\nlink set %s netns pn2\n' "${pair}a" "${pair}b" | ip -b - \
    || fail "move $pair into the namespaces"
  printf 'addr add 10.77.%s.1/24 dev %s\nlink set %s mtu %s up\n' "$n" "${pair}a" "${pair}a" "$mtu" | ip -n pn1 -b - \
    || fail "$pair: address and MTU $mtu in pn1"
  printf 'addr add 10.77.%s.2/24 dev %s\nlink set %s mtu %s up\n' "$n" "${pair}b" "${pair}b" "$mtu" | ip -n pn2 -b - \
    || fail "$pair: address and MTU $mtu in pn2"
}

mountpoint -q $CFG || mount -t configfs none $CFG
insmod "$(module_path pnic)" || fail "insmod pnic"
ip netns add pn1 && ip netns add pn2 || fail "netns"
ip -n pn1 link set lo up
ip -n pn2 link set lo up

# Bad settings are refused with an error, not taken.
mkdir "$P/bad" || fail "mkdir bad"
! echo 4 >"$P/bad/mem_kib" 2>/dev/null || fail "mem_kib 4 accepted"
! echo nosuchbus >"$P/bad/bus_a" 2>/dev/null || fail "a bus that does not exist accepted"
rmdir "$P/bad"

# The carrier follows the far end (read in sysfs before the ends move).
power_on p0
[[ $(<"$P/p0/flow_control") == 1 ]] || fail "flow control is not on by default"
carrier() { local c; read -r c <"/sys/class/net/$1/carrier" 2>/dev/null; echo "${c:-down}"; }
ip link set p0a up || fail "p0a up"
[[ $(carrier p0a) == 0 ]] || fail "carrier on while the far end is down"
ip link set p0b up || fail "p0b up"
[[ $(carrier p0a) == 1 && $(carrier p0b) == 1 ]] || fail "carrier off with both ends up"
ip link set p0b down
[[ $(carrier p0a) == 0 ]] || fail "carrier still on after the far end went down"
ip link set p0a down

# 1. No bus, jumbo frames.
into_namespaces p0 9000 0
! ip -n pn1 link set p0a mtu 9001 2>/dev/null || fail "MTU 9001 accepted (the NIC takes at most 9000)"
ip netns exec pn1 ping -c 2 -i 0.2 -W 5 10.77.0.2 >/dev/null || fail "ping over p0"
ip netns exec pn2 iperf3 -s -1 -D -p 5201 >/dev/null 2>&1
pause 1
report=$(ip netns exec pn1 iperf3 -c 10.77.0.2 -p 5201 -t 3 -f k 2>&1) || fail "iperf3 over p0: $report"
[[ $report =~ ([0-9.]+)\ Kbits/sec[^$'\n']*receiver ]] || fail "iperf3 over p0 reported no receiver rate: $report"
kbps=${BASH_REMATCH[1]%.*}
((kbps > 0)) || fail "iperf3 received nothing over p0"
echo "iperf3 TCP over p0 (no bus): $kbps Kbit/s"
# 64 MiB: 1 MiB of random bytes 64 times over (reading that much from
# /dev/urandom takes long in this guest).
head -c $((1 << 20)) /dev/urandom >/tmp/pnic-1m
files=()
for ((i = 0; i < 64; i++)); do files+=(/tmp/pnic-1m); done
cat "${files[@]}" >/tmp/pnic-64m
want=$(sha256sum </tmp/pnic-64m)
ip netns exec pn2 socat -u TCP-LISTEN:5001,reuseaddr SYSTEM:"sha256sum >/tmp/pnic-64m.sum" &
listener=$!
pause 1
ip netns exec pn1 socat -u FILE:/tmp/pnic-64m TCP:10.77.0.2:5001,retry=5 || fail "64 MiB send"
wait "$listener" || fail "64 MiB receive"
[[ $(</tmp/pnic-64m.sum) == "$want" ]] || fail "64 MiB arrived changed: $(</tmp/pnic-64m.sum) != $want"
rm -f /tmp/pnic-1m /tmp/pnic-64m /tmp/pnic-64m.sum
echo "64 MiB through p0, sha256 matches"

# 2. One bus for both NICs: every byte sent crossed it host to device, every
# byte received device to host.
mkdir "$CFG/pnic_bus/pci0" || fail "mkdir bus"
[[ $(<"$CFG/pnic_bus/pci0/bandwidth_bps") == 133333333 ]] || fail "default bandwidth is not 32-bit 33 MHz PCI"
power_on p1 bus_a=pci0 bus_b=pci0
into_namespaces p1 1500 1
ip netns exec pn1 ping -c 2 -i 0.2 -W 5 10.77.1.2 >/dev/null || fail "ping over p1"
ip netns exec pn2 iperf3 -s -1 -D -p 5202 >/dev/null 2>&1
pause 1
ip netns exec pn1 iperf3 -c 10.77.1.2 -p 5202 -t 2 >/dev/null 2>&1 || fail "iperf3 over p1 (bus)"
pause 1
declare -A bus
mapfile -t lines <"$CFG/pnic_bus/pci0/stats"
for line in "${lines[@]}"; do bus[${line% *}]=${line#* }; done
sent=$(($(pstat p1 a.tx_bytes) + $(pstat p1 b.tx_bytes)))
received=$(($(pstat p1 a.rx_bytes) + $(pstat p1 b.rx_bytes)))
((sent > 100000)) || fail "too little traffic to check the counters: $sent bytes"
[[ ${bus[h2d.bytes]} == "$sent" ]] || fail "bus h2d bytes ${bus[h2d.bytes]} != bytes sent $sent"
[[ ${bus[d2h.bytes]} == "$received" ]] || fail "bus d2h bytes ${bus[d2h.bytes]} != bytes received $received"
[[ $(pstat p1 a.h2d.bytes) == $(pstat p1 a.tx_bytes) ]] || fail "NIC a: h2d bytes != tx bytes"
[[ $(pstat p1 b.d2h.bytes) == $(pstat p1 b.rx_bytes) ]] || fail "NIC b: d2h bytes != rx bytes"
((${bus[h2d.busy_ns]} > 0 && ${bus[peer.transactions]} == 0)) || fail "bus busy time or kinds wrong"
echo "bus counters: $sent bytes host to device, $received device to host, as sent and received"

# 3. Device memory exhausted by a flood.
# 16 KiB per NIC, 90% of it for sending: 1.6 KiB of receive memory holds
# one full-size frame, so any burst overflows it.
# flood_p2 LABEL: p2 into the namespaces, a 2 s UDP flood from pn1, then
# ping; afterwards every pool of p2 must drain to zero.
flood_p2() {
  into_namespaces p2 1500 2
  ip netns exec pn2 iperf3 -s -1 -D -p 5203 >/dev/null 2>&1
  pause 1
  ip netns exec pn1 iperf3 -c 10.77.2.2 -p 5203 -u -b 0 -l 1400 -t 2 >/dev/null 2>&1
  ip netns exec pn1 ping -c 2 -i 0.2 -W 5 10.77.2.2 >/dev/null || fail "no traffic after the flood ($1)"
  pause 1
  local k
  for k in a.mem.rx.used a.mem.tx.used b.mem.rx.used b.mem.tx.used; do
    [[ $(pstat p2 $k) == 0 ]] || fail "$k is $(pstat p2 $k) after the traffic ended ($1)"
  done
}
power_on p2 mem_kib=16 tx_percent=90 flow_control=0
flood_p2 "no flow control"
missed=$(pstat p2 b.rx_missed)
((missed > 0)) || fail "a flood into 1.6 KiB of receive memory lost nothing"
[[ $(pstat p2 a.tx_paused) == 0 ]] || fail "a sender was held back with flow control off"
echo "flood without flow control: $missed frames lost to full device memory, counted; traffic recovered"
echo 0 >"$P/p2/power" || fail "power off p2"

# The same flood with flow control: the receiver's full memory holds the
# sender back, so nothing is lost to it.
echo 1 >"$P/p2/flow_control" || fail "flow_control 1 refused"
echo 1 >"$P/p2/power" || fail "power on p2 again"
flood_p2 "flow control"
held=$(pstat p2 a.tx_paused)
((held > 0)) || fail "a flood into 1.6 KiB of receive memory never held the sender back"
[[ $(pstat p2 b.rx_missed) == 0 ]] || fail "$(pstat p2 b.rx_missed) frames lost to full receive memory with flow control on"
echo "flood with flow control: the sender held back $held times, nothing lost to full memory; traffic recovered"

# Receive checksum offload off: the receiving NIC computes the checksums
# the sender left to its NIC, and the stack checks them.
ip netns exec pn2 ethtool -K p2b rx off >/dev/null || fail "ethtool -K p2b rx off"
head -c 8M /dev/urandom >/tmp/pnic-8m
want=$(sha256sum </tmp/pnic-8m)
ip netns exec pn2 socat -u TCP-LISTEN:5004,reuseaddr SYSTEM:"sha256sum >/tmp/pnic-8m.sum" &
listener=$!
pause 1
ip netns exec pn1 socat -u FILE:/tmp/pnic-8m TCP:10.77.2.2:5004,retry=5 || fail "8 MiB send (rx checksum offload off)"
wait "$listener" || fail "8 MiB receive (rx checksum offload off)"
[[ $(</tmp/pnic-8m.sum) == "$want" ]] || fail "8 MiB arrived changed with rx checksum offload off"
rm -f /tmp/pnic-8m /tmp/pnic-8m.sum
echo "rx checksum offload off: 8 MiB through p2, checksums computed by the NIC, sha256 matches"

# 4. A pair removed under traffic; a deleted namespace gives its pnic back.
ip netns exec pn1 ping -f -s 1400 -w 30 10.77.1.2 >/dev/null 2>&1 &
flood=$!
pause 1
echo 0 >"$P/p1/power" || fail "power off during traffic"
kill "$flood" 2>/dev/null
wait "$flood"
ip netns del pn2
for ((i = 0; i < 50; i++)); do [[ -e /sys/class/net/p0b ]] && break; pause 0.2; done
[[ -e /sys/class/net/p0b ]] || fail "p0b did not come back to the initial namespace"
ip link set p0b up || fail "p0b unusable after coming back"
ip netns exec pn1 ping -f -s 1400 -w 30 10.77.0.2 >/dev/null 2>&1 &
flood=$!
pause 1
rmdir "$P/p0" "$P/p1" "$P/p2" || fail "rmdir pairs (p0 powered, under traffic)"
rmdir "$CFG/pnic_bus/pci0" || fail "rmdir bus"
kill "$flood" 2>/dev/null
wait "$flood"
rmmod pnic || fail "rmmod pnic"
echo "pairs removed under traffic, module unloaded"
