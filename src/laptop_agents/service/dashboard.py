"""`la serve --dashboard`: one self-contained page that polls /status every second.

No external assets (the service may run on an air-gapped host and the page is
served with a strict Content-Security-Policy); values are inserted as text,
never as HTML, so an event field can not inject markup.
"""

DASHBOARD_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>laptop-agents</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;background:#111;color:#ddd}
 h1{font-size:1.2em;margin:0 0 .8em} .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:.8em}
 .card{background:#1c1c1c;border:1px solid #333;border-radius:6px;padding:.7em .9em}
 .k{color:#888;font-size:.85em} .v{font-size:1.35em;font-variant-numeric:tabular-nums}
 .ok{color:#5c5} .bad{color:#f55} .warn{color:#fb3}
 table{border-collapse:collapse;width:100%;margin-top:1em;font-size:.9em} td,th{border-bottom:1px solid #333;padding:.25em .5em;text-align:left;vertical-align:top}
 #err{color:#f55}
</style></head><body>
<h1>laptop-agents <span id="run" class="k"></span> <span id="err"></span></h1>
<div class="grid">
 <div class="card"><div class="k">state</div><div class="v" id="state">…</div><div class="k" id="health"></div></div>
 <div class="card"><div class="k">equity (USDT)</div><div class="v" id="equity">…</div><div class="k" id="pnl"></div></div>
 <div class="card"><div class="k">position</div><div class="v" id="position">…</div><div class="k" id="upnl"></div></div>
 <div class="card"><div class="k">last candle</div><div class="v" id="candle">…</div><div class="k" id="age"></div></div>
 <div class="card"><div class="k">circuit breaker</div><div class="v" id="breaker">…</div><div class="k" id="dd"></div></div>
 <div class="card"><div class="k">kill switch</div><div class="v" id="kill">…</div><div class="k" id="trades"></div></div>
</div>
<table><thead><tr><th>time (UTC)</th><th>event</th><th>details</th></tr></thead><tbody id="events"></tbody></table>
<script>
const $ = id => document.getElementById(id);
function set(id, text, cls){ const e=$(id); e.textContent=text; if(cls!==undefined) e.className='v '+cls; }
function row(e){
  const tr=document.createElement('tr');
  const rest=Object.entries(e).filter(([k])=>k!=='event'&&k!=='timestamp').map(([k,v])=>k+'='+v).join(' ');
  for(const t of [e.timestamp, e.event, rest]){ const td=document.createElement('td'); td.textContent=t; tr.appendChild(td); }
  return tr;
}
async function tick(){
  try{
    const r=await fetch('/status',{cache:'no-store'}); const s=await r.json();
    $('err').textContent='';
    $('run').textContent=(s.run_id||'')+' · '+(s.mode||'')+' · '+(s.symbol||'')+' · '+(s.source||'');
    set('state', s.state, s.state==='RUNNING'?'ok':'warn');
    $('health').textContent=(s.healthy?'healthy':'UNHEALTHY')+' · '+(s.ready?'ready':'not ready: '+(s.not_ready_because||[]).join('; '));
    set('equity', s.equity); $('pnl').textContent='realized PnL '+s.realized_pnl+' · MTM '+s.mark_to_market_equity;
    const p=s.position; set('position', p?p.side+' '+p.qty+' @ '+p.entry_price:'flat');
    $('upnl').textContent=p?('uPnL '+p.unrealized_pnl+' · SL '+p.stop_loss+' · TP '+p.take_profit):'';
    const c=s.last_candle; set('candle', c?c.close:'none');
    $('age').textContent=(c?c.ts+' · ':'')+'data age '+(s.data_age_sec===null?'n/a':s.data_age_sec.toFixed(2)+'s')+' · '+s.candles_processed+' candles';
    const b=s.breaker; set('breaker', b.tripped?'TRIPPED: '+b.reason:'ok', b.tripped?'bad':'ok');
    $('dd').textContent='drawdown '+b.drawdown_pct+'% of '+b.max_drawdown_pct+'% · losses in a row '+b.consecutive_losses;
    set('kill', s.kill_switch_active?'ACTIVE':'off', s.kill_switch_active?'bad':'ok');
    $('trades').textContent=s.trades+' trades';
    const tb=$('events'); tb.replaceChildren(...s.recent_events.slice().reverse().map(row));
  }catch(err){ $('err').textContent='(no connection: '+err+')'; }
}
tick(); setInterval(tick, 1000);
</script></body></html>
"""
