package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/daemon/offline"
	"github.com/backupd/backupd/proto/afc"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/store"
	"github.com/backupd/backupd/usbmux"
)

// Live returns the real outside world: usbmuxd through mux, the daemon
// behind <stateDir>/backupd.sock or its history, and backupDir's file
// system.
func Live(mux *usbmux.Client, stateDir, backupDir string) Deps {
	d := Deps{
		Mux:   mux,
		Known: func(ctx context.Context) (Known, error) { return known(ctx, stateDir) },
		SyncLock: func(ctx context.Context, dev usbmux.Device, timeout time.Duration) error {
			return syncLock(ctx, mux, dev, timeout)
		},
		FreeSpace: backup.FreeSpace,
		HardLinks: repo.ProbeHardLinks,
		HasLatest: func(udid string) bool {
			r, err := repo.Open(backupDir, repo.Options{})
			if err != nil {
				return false
			}
			defer r.Close()
			_, ok := r.Latest(udid)
			return ok
		},
	}
	if runtime.GOOS == "linux" {
		d.USBDevices = "/sys/bus/usb/devices"
	}
	return d
}

// known asks the daemon; with none running it reads the history.
func known(ctx context.Context, stateDir string) (Known, error) {
	c := client.New(filepath.Join(stateDir, api.SocketName))
	defer c.Close()
	h, err := c.Health(ctx)
	switch {
	case err == nil:
		devs, err := c.Devices(ctx)
		if err != nil {
			return Known{}, fmt.Errorf("ask backupd: %w", err)
		}
		return Known{DaemonRunning: true, Health: &h, Devices: devs}, nil
	case !errors.Is(err, client.ErrNoDaemon):
		return Known{}, fmt.Errorf("ask backupd: %w", err)
	}
	path := filepath.Join(stateDir, "history.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return Known{}, nil
	}
	for {
		devs, err := fromHistory(path)
		if !errors.Is(err, store.ErrInUse) {
			return Known{Devices: devs}, err
		}
		// A daemon that is starting holds the history before it
		// listens; one that is stopping, until it has closed it.
		select {
		case <-ctx.Done():
			return Known{}, fmt.Errorf("%w; backupd seems to be starting or stopping", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func fromHistory(path string) ([]api.Device, error) {
	st, err := store.Open(path, store.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return offline.StoredDevices(st)
}

// syncLockRetry is how often a held sync lock is tried again.
const syncLockRetry = 250 * time.Millisecond

// syncLock takes dev's sync lock, as a backup does first, and releases it
// at once. It posts no notification: asking other tools to let go is for
// a backup that is about to run, not for a check.
func syncLock(ctx context.Context, mux *usbmux.Client, dev usbmux.Device, timeout time.Duration) error {
	s, err := mux.OpenSession(ctx, dev)
	if err != nil {
		return err
	}
	svc, err := s.StartService(ctx, lockdown.ServiceAFC, false)
	if err != nil {
		s.Close()
		return fmt.Errorf("start afc: %w", err)
	}
	s.Close()
	conn, err := s.DialService(ctx, svc)
	if err != nil {
		return err
	}
	defer conn.Close()
	c := afc.NewClient(conn)
	lctx, cancel := context.WithTimeout(ctx, timeout)
	lock, err := c.AcquireSyncLock(lctx, syncLockRetry)
	cancel()
	if err != nil {
		if errors.Is(err, afc.ErrWouldBlock) {
			return cause.New(cause.DeviceBusy, err)
		}
		return err
	}
	return lock.Release(ctx)
}
