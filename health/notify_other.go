//go:build !linux

package health

import "errors"

var errNoNotify = errors.New("notify:// probes need Linux (SO_PASSCRED credentials on the daemon's NOTIFY_SOCKET)")

func notifyName() (string, error) { return "", errNoNotify }

type notifySocket struct{}

func newNotifySocket(string, *notifyState) *notifySocket { return &notifySocket{} }

func (*notifySocket) open() error  { return errNoNotify }
func (*notifySocket) Close() error { return nil }

func inProcessTree(root, pid int) bool { return root == pid }
