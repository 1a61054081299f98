package main

import (
	"github.com/a7garden/oxios/runtime/kube"
)

func kubeCommand() *command {
	return &command{
		name: "kube", summary: "generate the Kubernetes manifests of this configuration",
		help: `generate prints a Deployment and a Service (YAML, on stdout) that run the
same image with the same command, environment, probes, limits, grace and
data mount as 'oxios start', plus the config's [kubernetes] settings:
oxios kube generate | kubectl apply -f -`,
		sub: []*command{
			{name: "generate", summary: "print the Deployment and Service for the config",
				help: "Print the Deployment and Service of the config file that --config names, else the one the lookup order finds.",
				setup: func(fs *flagSet) runFunc {
					return noArgs("kube generate", cmdKubeGenerate)
				}},
		},
	}
}

func cmdKubeGenerate(e *env) int {
	l, err := loadConfig(e.common)
	if err != nil {
		report(e.stderr, err)
		return configFailCode(err, exitFail)
	}
	if err := kube.Generate(l.cfg, e.stdout); err != nil {
		report(e.stderr, err)
		return exitFail
	}
	return exitOK
}
