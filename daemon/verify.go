package daemon

import (
	"context"
	"fmt"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/offline"
)

// verify serves the API's verify requests: one device (udid) or all
// (udid empty). It runs beside the backups: verifyOne verifies again a
// latest that a commit swaps meanwhile, so the daemon needs no lock the
// actors would have to take.
func (d *Daemon) verify(ctx context.Context, udid string, req api.VerifyRequest) ([]api.VerifyResult, error) {
	versions := req.Versions
	if udid != "" {
		if err := repo.ValidUDID(udid); err != nil {
			return nil, &api.Error{Code: api.ErrBadRequest, Message: err.Error()}
		}
	}
	r, _, err := d.ensureRepo(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup_dir %s cannot be opened: %w", d.cfg.BackupDir, err)
	}
	var udids []string
	if udid != "" {
		_, hasLatest := r.Latest(udid)
		vs, err := r.Versions(udid)
		if err != nil {
			return nil, err
		}
		if !hasLatest && len(vs) == 0 {
			return nil, &api.Error{Code: api.ErrNotFound, Message: fmt.Sprintf("there is no backup of %s in %s", udid, r.Dir())}
		}
		udids = []string{udid}
	}
	nameOf := func(u string) string {
		if a, ok := d.actor(u); ok {
			if v := a.snapshot(); v.name != "" {
				return v.name
			}
		}
		if dev, err := d.store.Device(u); err == nil {
			return dev.Name
		}
		return ""
	}
	password := []byte(req.Password)
	defer clear(password)
	res, err := offline.VerifyBackups(ctx, r, udids, versions, password, nameOf, nil)
	if err != nil {
		return nil, err
	}
	bad := 0
	for _, x := range res {
		if !x.OK {
			bad++
		}
	}
	d.log.Info().Str("udid", udid).Bool("versions", versions).Bool("with_password", len(password) > 0).Int("backups", len(res)).Int("failed", bad).Msg("verified backups on request")
	return res, nil
}
