package daemon

import (
	"context"
	"time"

	"github.com/backupd/backupd/daemon/api"
)

// This file keeps the map of actors bounded. A device can present any
// number of UDIDs (a hostile one, or a usbmuxd listing odd entries): one
// goroutine and one view per UDID ever seen would grow without end. An
// actor whose phone is gone and that has nothing to do ends after
// actorIdle; past maxActors no new one starts.

// defaultActorIdle is how long an idle actor is kept: long enough that a
// phone unplugged and plugged back keeps its worker.
const defaultActorIdle = 10 * time.Minute

// maxActors bounds the actors at once: far more phones than one computer
// backs up, few enough that their goroutines cost nothing.
const maxActors = 256

// tell hands m to udid's actor, starting one when there is none; an
// actor that ended meanwhile is replaced. Nothing is sent past maxActors.
func (d *Daemon) tell(ctx context.Context, udid string, m actorMsg) {
	for ctx.Err() == nil {
		a := d.actorFor(ctx, udid)
		if a == nil || a.send(ctx, m) {
			return
		}
	}
}

// actorFor returns udid's actor, starting it the first time; nil when
// maxActors run already.
func (d *Daemon) actorFor(ctx context.Context, udid string) *actor {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.actors[udid]; ok {
		return a
	}
	if len(d.actors) >= maxActors {
		if !d.actorsFull {
			d.actorsFull = true
			d.log.Warn().Int("actors", len(d.actors)).Str("udid", udid).
				Msg("too many devices at once; ignoring new ones until some are gone for a while")
		}
		return nil
	}
	d.actorsFull = false
	a := newActor(d, udid)
	d.actors[udid] = a
	d.actorWG.Add(1)
	go func() {
		defer d.actorWG.Done()
		a.run(ctx)
	}()
	return a
}

// retire removes an idle actor from the map, unless a message is on its
// way (a sender holds it, or its inbox is not empty); true when the actor
// is to end. A sender that finds it retired asks actorFor again.
func (d *Daemon) retire(a *actor) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a.senders > 0 || len(a.inbox) > 0 {
		return false
	}
	delete(d.actors, a.udid)
	a.retired = true
	return true
}

// enter registers a sender with the actor; false when it has retired.
func (a *actor) enter() bool {
	a.d.mu.Lock()
	defer a.d.mu.Unlock()
	if a.retired {
		return false
	}
	a.senders++
	return true
}

func (a *actor) leave() {
	a.d.mu.Lock()
	a.senders--
	a.d.mu.Unlock()
}

// untaken is the error of a request its actor did not take: the request
// ran out of time, or the actor retired as its phone is gone.
func untaken(ctx context.Context) error {
	if ctx.Err() == nil {
		return &api.Error{Code: api.ErrNotConnected, Message: errNotConnected.Error()}
	}
	return &api.Error{Code: api.ErrUnavailable, Message: "the device's worker did not answer: " + ctx.Err().Error()}
}
