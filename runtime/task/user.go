package task

import (
	"errors"
	"fmt"

	"github.com/a7garden/oxios/runtime/config"
)

// ErrRootImage says that the image would run the daemon as uid 0 and the
// config did not ask for that.
var ErrRootImage = errors.New("image runs as root")

// resolveUser is the daemon's uid and gid: container.user, else the
// image's USER. The container has no user namespace, so uid 0 inside is
// root on the host, one kernel bug away from it: an image that says USER 0
// (or says nothing, which means root) is refused unless container.user
// asks for root by name, and then the risk is said on out.
func (r *Runtime) resolveUser(image, imageUser string) (uid, gid int, err error) {
	user, explicit := r.cfg.Container.User, r.cfg.Container.User != ""
	if !explicit {
		user = imageUser
	}
	if user == "" {
		user = "0" // an image without USER runs as root
	}
	uid, gid, ok := config.ParseUser(user)
	if !ok {
		return -1, -1, fmt.Errorf("image %s user %q is not numeric UID[:GID] (a scratch image has no /etc/passwd): set container.user", image, user)
	}
	if uid != 0 {
		return uid, gid, nil
	}
	if !explicit {
		return -1, -1, fmt.Errorf("%w: image %s has USER %q, uid 0, which is root on the host (the container has no user namespace): "+
			"set container.user to a non-root UID, or to \"0\" to run it as root anyway", ErrRootImage, image, imageUser)
	}
	fmt.Fprintf(r.out, "warning: container.user = %q runs the daemon as uid 0, root on the host (the container has no user namespace): "+
		"whoever takes over the daemon is one kernel bug away from the host\n", r.cfg.Container.User)
	return uid, gid, nil
}
