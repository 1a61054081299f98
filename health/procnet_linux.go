package health

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/netip"
	"os"
	"strconv"
)

// procNetListeners reads LISTEN sockets from /proc/net/tcp or tcp6 (the
// fallback when sock_diag netlink is unavailable, e.g. inet_diag not loaded
// or netlink filtered by a seccomp profile). buf is reused across calls.
func procNetListeners(path string, buf *[]byte, out []listener) ([]listener, error) {
	f, err := os.Open(path)
	if err != nil {
		return out, err
	}
	defer f.Close()
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, err
		}
	}
	*buf = b
	return parseProcNet(b, out), nil
}

// parseProcNet parses the text of /proc/net/tcp{,6}:
//
//	sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:1068 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 ...
//
// Addresses are the kernel's __be32 words printed as host-order hex.
func parseProcNet(b []byte, out []listener) []listener {
	first := true
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if first { // header
			first = false
			continue
		}
		var f [10][]byte
		n := 0
		for _, w := range bytes.Fields(line) {
			if n == len(f) {
				break
			}
			f[n] = w
			n++
		}
		if n < 10 || string(f[3]) != "0A" { // 0A = TCP_LISTEN
			continue
		}
		local := f[1]
		colon := bytes.IndexByte(local, ':')
		if colon < 0 {
			continue
		}
		addr, ok := parseProcAddr(local[:colon])
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(string(local[colon+1:]), 16, 16)
		if err != nil {
			continue
		}
		var rx uint64
		if q := f[4]; len(q) == 17 {
			rx, _ = strconv.ParseUint(string(q[9:]), 16, 32)
		}
		inode, err := strconv.ParseUint(string(f[9]), 10, 32)
		if err != nil {
			continue
		}
		out = append(out, listener{addr: addr, port: uint16(port), inode: uint32(inode), queued: uint32(rx)})
	}
	return out
}

func parseProcAddr(h []byte) (netip.Addr, bool) {
	var raw [16]byte
	switch len(h) {
	case 8, 32:
	default:
		return netip.Addr{}, false
	}
	for i := 0; i < len(h)/8; i++ {
		var w [4]byte
		if _, err := hex.Decode(w[:], h[i*8:i*8+8]); err != nil {
			return netip.Addr{}, false
		}
		// The kernel printed a native-endian u32 holding network-order bytes.
		binary.NativeEndian.PutUint32(raw[i*4:], binary.BigEndian.Uint32(w[:]))
	}
	if len(h) == 8 {
		return netip.AddrFrom4([4]byte(raw[:4])), true
	}
	return netip.AddrFrom16(raw), true
}
