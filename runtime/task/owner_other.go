//go:build !linux

package task

import "errors"

// PortOwner is Linux-only (/proc); elsewhere the owner is unknown.
func PortOwner(port int) (Process, error) {
	return Process{}, errors.New("port owner lookup needs /proc")
}
