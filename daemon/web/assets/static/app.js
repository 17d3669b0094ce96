// backupd's page script: dates in the browser's time zone, and live
// updates from the daemon's event stream. The page works without it;
// this only keeps it current. It inserts only text, or HTML the server
// rendered and escaped.
(function () {
  'use strict';

  var body = document.body;
  var liveSrc = body.getAttribute('data-live-src');
  var udid = body.getAttribute('data-udid') || '';
  var statusEl = document.getElementById('live-status');

  function pad(n) { return n < 10 ? '0' + n : '' + n; }

  // localise writes each <time datetime> in the browser's time zone.
  function localise(root) {
    var times = root.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d.getTime())) { continue; }
      t.title = t.textContent;
      t.textContent = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) +
        ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes());
    }
    var note = document.getElementById('tz-note');
    if (note) {
      var tz = '';
      try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (e) { tz = ''; }
      note.textContent = 'Times are in your time zone' + (tz ? ' (' + tz + ')' : '') + '.';
    }
  }

  function plural(n, unit) { return n === 1 ? '1 ' + unit : n + ' ' + unit + 's'; }

  // roughly and bytes say durations and sizes as the server does.
  function roughly(sec) {
    if (sec < 60) { return plural(Math.round(sec), 'second'); }
    if (sec < 3600) { return plural(Math.floor(sec / 60), 'minute'); }
    if (sec < 48 * 3600) { return plural(Math.floor(sec / 3600), 'hour'); }
    return plural(Math.floor(sec / 86400), 'day');
  }

  function bytes(n) {
    if (!(n > 0)) { return '0 B'; }
    if (n < 1024) { return Math.floor(n) + ' B'; }
    var units = 'KMGTPE', div = 1024, exp = 0;
    for (var m = n / 1024; m >= 1024 && exp < 5; m /= 1024) { div *= 1024; exp++; }
    return (n / div).toFixed(1) + ' ' + units.charAt(exp) + 'iB';
  }

  function ages() {
    var els = document.querySelectorAll('.age[data-since]');
    for (var i = 0; i < els.length; i++) {
      var since = new Date(els[i].getAttribute('data-since'));
      var s = (Date.now() - since.getTime()) / 1000;
      if (!isNaN(s)) { els[i].textContent = s < 60 ? 'just now' : roughly(s) + ' ago'; }
    }
  }

  localise(document);
  setInterval(ages, 30000);

  if (!liveSrc || !window.EventSource || !window.fetch) { return; }

  function say(text) {
    if (!statusEl) { return; }
    statusEl.textContent = text;
    statusEl.hidden = false;
  }

  // refresh swaps the live part of the page for a fresh rendering of it.
  var timer = null, busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(liveSrc, { credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
      if (!r.ok) { throw new Error('HTTP ' + r.status); }
      return r.text();
    }).then(function (html) {
      var target = document.querySelector('[data-live]');
      if (!target) { return; }
      var doc = new DOMParser().parseFromString(html, 'text/html');
      target.replaceChildren.apply(target, Array.prototype.slice.call(doc.body.childNodes));
      localise(target);
    }).catch(function () {
      say('Could not refresh; retrying');
    }).then(function () {
      busy = false;
      if (again) { again = false; soon(); }
    });
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 150);
  }

  // progress moves a card's bar without asking the server.
  function progress(ev) {
    var card = document.getElementById('card-' + ev.udid);
    var p = ev.progress;
    var bar = card && card.querySelector('progress');
    if (!bar || !p) { soon(); return; }
    bar.value = p.percent;
    bar.textContent = Math.round(p.percent) + '%';
    var done = card.querySelector('.done');
    if (done) { done.textContent = Math.round(p.percent) + '% · ' + bytes(p.bytes) + ', ' + p.files + ' files'; }
    var rate = card.querySelector('.rate');
    if (rate) { rate.textContent = p.bytes_per_second > 0 ? ' · ' + bytes(p.bytes_per_second) + '/s' : ''; }
    var eta = card.querySelector('.eta');
    // No estimate (too early, or done): no time left shown, not a stale one.
    if (eta) { eta.textContent = p.eta_seconds > 0 ? ' · ' + roughly(p.eta_seconds) + ' left' : ''; }
    // The phone started or stopped thinking: the server words it.
    if (!!p.thinking_since !== !!card.querySelector('.thinking')) { soon(); }
  }

  // stale says doctor's checks, which ran when the page was drawn, may
  // no longer hold once the phone's state has changed.
  function stale() {
    var note = document.getElementById('checks-stale');
    if (note) { note.hidden = false; }
  }

  var source = null;
  function connect() {
    source = new EventSource('/events' + (udid ? '?udid=' + encodeURIComponent(udid) : ''));
    source.addEventListener('open', function () {
      say('Live');
      // Whatever happened while the stream was down shows now.
      soon();
    });
    source.addEventListener('progress', function (e) {
      try { progress(JSON.parse(e.data)); } catch (err) { soon(); }
    });
    ['state', 'run', 'usbmuxd'].forEach(function (type) {
      source.addEventListener(type, soon);
    });
    source.addEventListener('state', stale);
    source.addEventListener('error', function () {
      say('Reconnecting…');
      if (source.readyState === EventSource.CLOSED) {
        // The browser gives up on an error answer; try again later.
        setTimeout(connect, 3000);
      }
    });
  }
  connect();
}());
