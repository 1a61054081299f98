//go:build !oxios_nohttps

package health

import (
	"crypto/tls"
	"net"
)

// clientTLS starts TLS over conn for an https:// probe. Certificates are
// not verified: the kubelet does not verify probe certificates either.
//
// The Makefile builds oxios-init with -tags oxios_nohttps, which leaves
// this out (see notls.go): crypto/tls is 2.2 MB of the binary and, since a
// static binary's pages end up resident, about 1.4 MiB of PID 1's memory
// in every container, for probes that target the daemon on localhost.
var clientTLS = func(conn net.Conn, serverName string) (net.Conn, error) {
	tc := tls.Client(conn, &tls.Config{ServerName: serverName, InsecureSkipVerify: true}) //nolint:gosec // see above
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc, nil
}
