(function () {
  'use strict';
  // Key names are attacker-chosen text: every value reaches the page
  // through textContent, never as markup.
  var OUTCOMES = ['allowed', 'denied', 'failure_policy', 'error'];
  var COLORS = { allowed: '#2e7d32', denied: '#c62828', failure_policy: '#ef6c00', error: '#6d6d6d' };
  var tokenMatch = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  var token = tokenMatch ? decodeURIComponent(tokenMatch[1]) : null;
  var path = location.pathname.replace(/index\.html$/, '');
  var api = (path.charAt(path.length - 1) === '/' ? path : path + '/') + 'api.json';
  var state = { updates: 0, last: null };
  window.__dashboard = state;

  function el(id) { return document.getElementById(id); }
  function text(node, value) { node.textContent = value; return node; }
  function cell(row, value, cls) {
    var td = document.createElement('td');
    if (cls) { td.className = cls; }
    text(td, value);
    row.appendChild(td);
    return td;
  }
  function fill(tbody, rows, render) {
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    rows.forEach(function (item) {
      var tr = document.createElement('tr');
      render(tr, item);
      tbody.appendChild(tr);
    });
  }
  function ms(v) {
    if (v >= 3600000) { return (v / 3600000).toFixed(1) + ' h'; }
    if (v >= 60000) { return (v / 60000).toFixed(1) + ' min'; }
    if (v >= 1000) { return (v / 1000).toFixed(1) + ' s'; }
    return v + ' ms';
  }
  function ago(now, t) {
    if (!t) { return '–'; }
    var s = Math.max(0, now - t);
    return s === 0 ? 'now' : s + ' s ago';
  }

  function drawChart(series) {
    var canvas = el('chart');
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || 960, h = canvas.clientHeight || 260;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    var ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var left = 48, right = 12, top = 12, bottom = 24;
    var max = 1;
    series.forEach(function (s) { OUTCOMES.forEach(function (o) { max = Math.max(max, s[o]); }); });
    ctx.strokeStyle = '#e0e0e0';
    ctx.fillStyle = '#666';
    ctx.font = '11px sans-serif';
    ctx.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var y = top + (h - top - bottom) * i / 4;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
      ctx.fillText(String(Math.round(max * (4 - i) / 4)), 4, y + 4);
    }
    var n = series.length;
    if (n > 0) {
      ctx.fillText(ago(series[n - 1].t, series[0].t), left, h - 6);
      ctx.fillText('now', w - right - 24, h - 6);
    }
    var x = function (k) { return n <= 1 ? w - right : left + (w - left - right) * k / (n - 1); };
    var yv = function (v) { return top + (h - top - bottom) * (1 - v / max); };
    var points = 0;
    OUTCOMES.forEach(function (o) {
      ctx.strokeStyle = COLORS[o];
      ctx.fillStyle = COLORS[o];
      ctx.lineWidth = 2;
      ctx.beginPath();
      series.forEach(function (s, k) {
        if (k === 0) { ctx.moveTo(x(k), yv(s[o])); } else { ctx.lineTo(x(k), yv(s[o])); }
        points++;
      });
      ctx.stroke();
      if (n === 1) { ctx.fillRect(x(0) - 2, yv(series[0][o]) - 2, 4, 4); }
    });
    canvas.dataset.points = String(points);
  }

  function render(d) {
    var last = d.series.length ? d.series[d.series.length - 1] : null;
    OUTCOMES.forEach(function (o) {
      text(el('rate-' + o), last ? String(last[o]) : '–');
      text(el('total-' + o), d.totals[o] + ' in all');
    });
    var when = d.now ? new Date(d.now * 1000).toLocaleTimeString() : 'no tick yet';
    text(el('status'), (d.source === 'fleet' ? 'fleet of ' + d.processes + ' process' + (d.processes === 1 ? '' : 'es') : 'this process') + ' · data at ' + when);
    text(el('span'), '(last ' + d.span_secs + ' to ' + 2 * d.span_secs + ' s)');
    drawChart(d.series);
    fill(el('top').tBodies[0], d.top_denied, function (tr, k) {
      var key = cell(tr, k.key, 'key');
      key.title = k.truncated ? 'truncated: the key is longer than shown' : '';
      cell(tr, String(k.count), 'num');
      cell(tr, String(k.error), 'num');
      cell(tr, k.remaining + ' / ' + k.limit, 'num');
      cell(tr, ms(k.reset_after_ms), 'num');
      cell(tr, ago(d.now, k.last_seen), 'num');
    });
    el('top-empty').hidden = d.top_denied.length > 0;
    fill(el('quotas').tBodies[0], d.quotas, function (tr, q) {
      cell(tr, q.name, 'key');
      cell(tr, q.algorithm);
      cell(tr, String(q.limit), 'num');
      cell(tr, ms(q.period_ms), 'num');
    });
    var r = d.redis;
    el('redis').hidden = !r;
    if (r) {
      text(el('redis-prefix'), 'prefix ' + r.prefix);
      text(el('redis-summary'), r.keys + (r.complete ? '' : '+') + ' keys under the prefix (SCAN sample' + (r.complete ? ', complete' : ', partial') + ')');
      fill(el('closest').tBodies[0], r.closest_to_empty, function (tr, k) {
        cell(tr, k.key, 'key');
        cell(tr, k.remaining === null ? '?' : String(k.remaining), 'num');
        cell(tr, ms(k.reset_after_ms), 'num');
      });
    }
  }

  function problem(message) {
    var p = el('problem');
    p.hidden = !message;
    text(p, message || '');
  }

  function poll() {
    var headers = { 'Accept': 'application/json' };
    if (token) { headers.Authorization = 'Bearer ' + token; }
    fetch(api, { headers: headers, cache: 'no-store', credentials: 'omit' })
      .then(function (res) {
        if (!res.ok) { throw new Error('the dashboard answered ' + res.status + (res.status === 401 || res.status === 403 ? ': open the page with #token=… or from loopback' : '')); }
        return res.json();
      })
      .then(function (d) {
        problem(null);
        render(d);
        state.last = d;
        state.updates++;
      })
      .catch(function (e) { problem(String(e && e.message || e)); })
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
