package contract

import "testing"

func TestEnvNameRoundTrip(t *testing.T) {
	for opt, env := range map[string]string{
		"readiness":          "OXIOS_INIT_READINESS",
		"readiness-period":   "OXIOS_INIT_READINESS_PERIOD",
		"kill-process-group": "OXIOS_INIT_KILL_PROCESS_GROUP",
	} {
		if got := EnvName(opt); got != env {
			t.Errorf("EnvName(%q) = %q, want %q", opt, got, env)
		}
		if got, ok := OptionName(env); !ok || got != opt {
			t.Errorf("OptionName(%q) = %q, %v, want %q", env, got, ok, opt)
		}
	}
	for _, env := range []string{"OXIOS_INIT_", "TINI_SUBREAPER", "OXIOS_INITX"} {
		if got, ok := OptionName(env); ok {
			t.Errorf("OptionName(%q) = %q, true; want not an option", env, got)
		}
	}
}

// The token's variable is a constant (oxios-init reads it before anything
// else) that must stay the option's variable.
func TestNotifyTokenEnvIsTheOption(t *testing.T) {
	if got := EnvName(OptNotifyToken); got != NotifyTokenEnv {
		t.Errorf("EnvName(%q) = %q, NotifyTokenEnv = %q", OptNotifyToken, got, NotifyTokenEnv)
	}
}
