//go:build linux

package health

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

func BenchmarkListenProbe(b *testing.B) {
	for _, tc := range []struct{ name, host string }{{"host", "127.0.0.1"}, {"any", ""}} {
		b.Run(tc.name+"/missing", func(b *testing.B) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			p := newListenProber(tc.host, port)
			defer p.Close()
			dl := time.Now().Add(time.Hour)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p.Probe(bg, dl)
			}
		})
		b.Run(tc.name+"/listening", func(b *testing.B) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			defer ln.Close()
			p := newListenProber(tc.host, ln.Addr().(*net.TCPAddr).Port)
			p.SetRoot(os.Getpid())
			defer p.Close()
			dl := time.Now().Add(time.Hour)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p.Probe(bg, dl)
			}
		})
	}
	_ = strconv.Itoa
}
