package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/daemon/doctor"
	"github.com/backupd/backupd/daemon/web"
	"github.com/backupd/backupd/usbmux"
)

// startWeb serves the web page on web.listen, when it is set, and returns
// what stops it. The page asks the daemon through its API socket, as the
// CLI does; until the daemon listens it says so. It listens before the
// daemon starts so that a port in use is refused at once.
func startWeb(cfg fileConfig, log zerolog.Logger) (stop func(), err error) {
	if cfg.Web.Listen == "" {
		return func() {}, nil
	}
	addr := usbmux.DefaultAddr()
	if cfg.Usbmuxd != "" {
		if addr, err = usbmux.ParseAddr(cfg.Usbmuxd); err != nil {
			return nil, fmt.Errorf("usbmuxd: %w", err)
		}
	}
	api := client.New(socketPath(cfg))
	mux := usbmux.NewClient(usbmux.Config{Addr: addr, Timeout: doctorMuxTimeout})
	h, err := web.New(web.Options{
		API: web.FromClient(api),
		Doctor: func(ctx context.Context, udid string) (doctor.Report, error) {
			return doctor.Run(ctx, doctorConfig(cfg, udid), doctor.Live(mux, cfg.StateDir, cfg.BackupDir))
		},
		FreeSpace:    backup.FreeSpace,
		OverdueAfter: cfg.OverdueAfter.D(),
		Token:        cfg.Web.Token,
		Version:      version,
		Logger:       log.With().Str("component", "web").Logger(),
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		return nil, fmt.Errorf("web.listen: %w", err)
	}
	// Ending base ends the event streams, which would otherwise keep
	// Shutdown waiting.
	base, cancel := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		// A keep-alive connection left idle holds a descriptor: not for
		// long (issue #16).
		IdleTimeout:    time.Minute,
		MaxHeaderBytes: 16 << 10,
		BaseContext:    func(net.Listener) context.Context { return base },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("web page server stopped")
		}
	}()
	log.Info().Str("url", "http://"+ln.Addr().String()+"/").Msg("serving the web page")
	return func() {
		cancel()
		ctx, stopWait := context.WithTimeout(context.Background(), time.Second)
		defer stopWait()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
		api.Close()
	}, nil
}

// doctorConfig is doctor's configuration for one phone, as `backupd
// doctor UDID` runs it.
func doctorConfig(cfg fileConfig, udid string) doctor.Config {
	return doctor.Config{
		BackupDir:         cfg.BackupDir,
		FreeSpaceMargin:   uint64(max(cfg.Policy.FreeSpaceMargin, 0)),
		MinBattery:        cfg.Policy.MinBattery,
		WiFi:              cfg.Policy.WiFi,
		RequireEncryption: cfg.Policy.Encryption == "required",
		Clone:             cfg.Backup.Clone,
		OverdueAfter:      cfg.OverdueAfter.D(),
		UDID:              udid,
	}
}
