// Package k8stest runs the shipped manifest (../deployment.yaml) under a
// real kubelet. Its tests need the node that scripts/k8s-test.sh sets up (a
// standalone kubelet on a private containerd with CRI and a CNI bridge) and
// skip unless that script runs them (OXIOS_K8S_TEST=1).
//
// pause/ is the pod sandbox's program: containerd's sandbox_image there is
// built from it FROM scratch, since no registry is reachable.
package k8stest
