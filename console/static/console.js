// proctor console: live approvals (polling a small JSON endpoint), expiry countdowns, run page refresh.
// No framework, nothing loaded from elsewhere.
(function () {
  'use strict';

  var POLL_MS = 2000;

  function fmtLeft(seconds) {
    if (seconds <= 0) return 'expired';
    var s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60);
    if (d) return 'in ' + d + 'd ' + h + 'h';
    if (h) return 'in ' + h + 'h ' + m + 'm';
    if (m) return 'in ' + m + 'm ' + (s % 60) + 's';
    return 'in ' + s + 's';
  }

  function tickExpiries() {
    var now = Date.now() / 1000;
    document.querySelectorAll('time.expiry[data-expires]').forEach(function (el) {
      var left = parseFloat(el.dataset.expires) - now;
      el.textContent = fmtLeft(left);
      el.classList.toggle('expired', left <= 0);
    });
  }

  function setCount(n) {
    var badge = document.getElementById('pending-count');
    if (!badge) return;
    badge.textContent = String(n);
    badge.hidden = n === 0;
  }

  function setLive(ok) {
    var el = document.getElementById('live-status');
    if (!el) return;
    el.textContent = ok ? 'live' : 'offline';
    el.classList.toggle('off', !ok);
  }

  // Swap in new pending cards and mark decided ones, without touching a card being edited.
  function refreshPending(list) {
    return fetch('/approvals/pending.html', { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var tpl = document.createElement('template');
        tpl.innerHTML = html;
        var fresh = tpl.content.querySelectorAll('[data-approval-id]');
        var freshIds = {};
        var anchor = list.firstChild;
        fresh.forEach(function (card) {
          var id = card.dataset.approvalId;
          freshIds[id] = true;
          if (!list.querySelector('[data-approval-id="' + CSS.escape(id) + '"]')) {
            card.classList.add('fresh');
            list.insertBefore(card, anchor);
          }
        });
        list.querySelectorAll('[data-approval-id]').forEach(function (card) {
          if (freshIds[card.dataset.approvalId]) return;
          if (card.contains(document.activeElement)) { card.classList.add('gone'); return; }
          card.remove();
        });
        var empty = document.getElementById('no-pending');
        var any = list.querySelector('[data-approval-id]');
        if (empty && any) empty.remove();
        if (!empty && !any) {
          var p = document.createElement('p');
          p.className = 'empty-state'; p.id = 'no-pending'; p.textContent = 'Nothing waiting for a decision.';
          list.appendChild(p);
        }
        tickExpiries();
      });
  }

  function poll() {
    fetch('/api/approvals?status=pending', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (r.status === 401) {  // the session ended: sign in again, then come back here
          window.location.assign('/login?next=' + encodeURIComponent(window.location.pathname));
          throw new Error('signed out');
        }
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then(function (body) {
        setLive(true);
        var ids = body.approvals.map(function (a) { return a.approval_id; });
        setCount(ids.length);
        var list = document.getElementById('pending-list');
        if (!list) return;
        var shown = Array.prototype.map.call(list.querySelectorAll('[data-approval-id]:not(.gone)'),
          function (c) { return c.dataset.approvalId; });
        if (ids.slice().sort().join() !== shown.slice().sort().join()) return refreshPending(list);
      })
      .catch(function () { setLive(false); })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  // A run still in progress reloads itself, unless the reader has opened a span's details.
  function autoRefresh() {
    var secs = parseFloat(document.body.dataset.refresh || '0');
    if (!secs) return;
    setInterval(function () {
      if (!document.querySelector('details.wf-row[open]')) window.location.reload();
    }, secs * 1000);
  }

  // A rejection needs a reason (the server checks too); say so before the round trip.
  document.addEventListener('submit', function (ev) {
    var form = ev.target, button = ev.submitter;
    if (!form.classList || !form.classList.contains('decide') || !button || !button.classList.contains('reject')) return;
    var reason = form.querySelector('textarea[name=reason]');
    if (reason && !reason.value.trim()) {
      ev.preventDefault();
      reason.setCustomValidity('A rejection needs a reason.');
      reason.reportValidity();
      reason.addEventListener('input', function () { reason.setCustomValidity(''); }, { once: true });
    }
  });

  document.addEventListener('DOMContentLoaded', function () {
    tickExpiries();
    setInterval(tickExpiries, 1000);
    if (document.getElementById('pending-count')) poll();
    autoRefresh();
  });
})();
