// Package kube renders the Kubernetes Deployment and Service that run the
// same image, with the same settings, as `oxios start` does on one host,
// so that a daemon that outgrows its host moves with one command
// (`oxios kube generate`).
package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/template"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/a7garden/oxios/runtime/config"
)

// The image's ENTRYPOINT, CMD and USER (Containerfile): a pod spells them
// out so that the manifest says what runs, and falls back to them when the
// config keeps the image's.
var (
	ImageEntrypoint = []string{"/usr/local/bin/oxios-init", "--"}
	ImageCmd        = []string{"/usr/local/bin/oxios-demo"}
)

// ImageUser is the image's USER (uid and gid), used when container.user
// is empty.
const ImageUser = 65532

// Generate writes the Deployment, a "---" line and the Service.
func Generate(cfg *config.Config, w io.Writer) error {
	var b bytes.Buffer
	if err := Deployment(cfg, &b); err != nil {
		return err
	}
	b.WriteString("---\n")
	if err := Service(cfg, &b); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Deployment writes the Deployment of cfg's daemon.
func Deployment(cfg *config.Config, w io.Writer) error {
	p, err := newPod(cfg)
	if err != nil {
		return err
	}
	return render(w, deploymentTmpl, p)
}

// Service writes the ClusterIP Service in front of the daemon's port.
func Service(cfg *config.Config, w io.Writer) error {
	p, err := newPod(cfg)
	if err != nil {
		return err
	}
	return render(w, serviceTmpl, p)
}

func render(w io.Writer, t *template.Template, p *pod) error {
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return fmt.Errorf("render %s: %w", t.Name(), err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// checkName refuses a container.id that Kubernetes would refuse as the
// Deployment's name and label.
func checkName(id string) error {
	if errs := validation.IsDNS1123Label(id); len(errs) > 0 {
		return fmt.Errorf("container.id %q is not a Kubernetes name: %s", id, strings.Join(errs, "; "))
	}
	return nil
}

// q quotes s as a YAML double-quoted scalar (JSON's string syntax is a
// subset of it), so no value from the config can change the structure.
func q(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

var plainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// name writes an environment variable's name plain when YAML reads it
// back as the same string (not N, which YAML 1.1 reads as false), else
// quoted.
func name(s string) string {
	var back any
	if plainName.MatchString(s) && yaml.Unmarshal([]byte(s), &back) == nil && back == s {
		return s
	}
	return q(s)
}

// flow writes a YAML flow sequence of quoted strings.
func flow(list []string) string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = q(s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}
