//go:build tools

// The import keeps the kubelet and everything it needs in go.mod and go.sum,
// so `go build k8s.io/kubernetes/cmd/kubelet` here needs no network but the
// module proxy.
package kubeletbuild

import _ "k8s.io/kubernetes/cmd/kubelet"
