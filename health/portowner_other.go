//go:build !linux

package health

import "errors"

// PortOwner needs /proc; elsewhere the owner of a port is unknown.
func PortOwner(port int) (int, error) { return 0, errors.New("port owner lookup needs /proc") }
