//go:build !linux || !(amd64 || arm64)

package supervisor

import "syscall"

// rtminGuard is a no-op here: signal 34 keeps its default action
// (rtmin_linux.go sets SIG_IGN on amd64 and arm64 only, whose struct
// sigaction layout it knows).
type rtminGuard struct{}

func ignoreRTMin([]syscall.Signal) rtminGuard { return rtminGuard{} }
func (rtminGuard) beforeFork()                {}
func (rtminGuard) afterFork()                 {}
