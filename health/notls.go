//go:build oxios_nohttps

package health

import "net"

// clientTLS is nil: this build has no https:// probes (see tls.go).
var clientTLS func(conn net.Conn, serverName string) (net.Conn, error)
