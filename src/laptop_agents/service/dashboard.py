"""`la serve --dashboard`: one self-contained page that polls /status every second.

/status renders the session's read model (session/read_model.py), so the page shows exactly what /readyz,
STATUS= and the metrics show: mode, readiness and its reasons, broker health.

No external assets (the service may run on an air-gapped host and the page is
served with a strict Content-Security-Policy); values are inserted as text,
never as HTML, so an event field can not inject markup.

The equity chart draws the design of summary.html's (reporting/equity_chart.py)
in the browser: equity as a step line on a time axis, the starting equity
dashed, entry triangles (long up, short down), exit dots (win green, loss red)
and the drawdown from the running peak below. Its points are the fills and
exits seen in /status's recent events (kept across polls, so the history grows
while the page is open) plus the current equity now; SVG nodes are built with
createElementNS and text goes in through textContent only.
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
 .chart{margin-top:.8em} .chart svg{display:block;width:100%;height:auto}
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
<div class="card chart"><div class="k">equity (USDT) over time · ▲ long entry ▼ short entry · ● exit (green win,
 red loss) · drawdown from peak below · dashed: before this page opened</div><svg id="chart" viewBox="0 0 900 300" role="img"
 aria-label="equity curve with trade markers and drawdown"></svg></div>
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
    $('health').textContent=(s.healthy?'healthy':'UNHEALTHY')+' · '+(s.ready?'ready':'not ready: '+(s.not_ready_because||[]).join('; '))
      +' · broker '+(s.broker_healthy?'ok':'UNHEALTHY');
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
    remember(s); drawChart(s);
  }catch(err){ $('err').textContent='(no connection: '+err+')'; }
}
const NS='http://www.w3.org/2000/svg', hist=new Map(); let startPt=null;
function el(tag, attrs, title){
  const n=document.createElementNS(NS, tag);
  for(const [k,v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if(title){ const t=document.createElementNS(NS,'title'); t.textContent=title; n.appendChild(t); }
  return n;
}
function txt(x, y, text, attrs){ const n=el('text', Object.assign({x:x, y:y, 'font-size':11, fill:'#9ca3af'}, attrs||{})); n.textContent=text; return n; }
function remember(s){
  if(s.started_at && s.starting_equity!=null) startPt={t:Date.parse(s.started_at), eq:+s.starting_equity};
  for(const e of (s.recent_events||[])){
    if((e.event!=='ExecutionFill' && e.event!=='ExecutionExit') || e.equity==null) continue;
    const key=e.event+'|'+e.timestamp+'|'+(e.order_id||e.trade_id||'');
    if(hist.has(key)) continue;
    hist.set(key, {t:Date.parse(e.timestamp), eq:+e.equity, kind:e.event==='ExecutionFill'?'entry':'exit',
      side:String(e.position_side||''), pnl:+(e.pnl||0), fee:+(e.fee||0), what:String(e.reason||e.side||''), id:String(e.trade_id||e.order_id||'')});
    if(hist.size>4000) hist.delete(hist.keys().next().value);
  }
}
function niceStep(span, n){ if(!(span>0)) return 1; const raw=span/n, mag=Math.pow(10, Math.floor(Math.log10(raw)));
  for(const m of [1,2,2.5,5,10]) if(raw<=m*mag) return m*mag; return 10*mag; }
const TSTEPS=[1,2,5,10,15,30,60,120,300,600,900,1800,3600,7200,10800,21600,43200,86400];
function timeStep(sec){ for(const st of TSTEPS) if(sec/st<=6) return st; return TSTEPS[TSTEPS.length-1]; }
function drawChart(s){
  const svg=$('chart'), W=900, H=300, L=78, R=16, T=12, EQH=172, GAP=14, DDH=64, PW=W-L-R;
  const evs=[...hist.values()].sort((a,b)=>a.t-b.t);
  // the equity just before the first event this page saw; if it is not the starting equity, the trades in
  // between scrolled out of /status before the page opened: that stretch is drawn dashed (not known here)
  const pts=[]; let gap=null;
  if(evs.length){
    const f=evs[0], before=f.kind==='entry'?f.eq+f.fee:f.eq-f.pnl;
    if(startPt && Math.abs(before-startPt.eq)>1e-6){ gap={t0:startPt.t, e0:startPt.eq, t1:f.t, e1:before}; pts.push({t:startPt.t, eq:startPt.eq}); pts.push({t:f.t, eq:before}); }
  }
  if(!gap && startPt) pts.push({t:startPt.t, eq:startPt.eq});
  for(const p of evs) pts.push({t:p.t, eq:p.eq});
  const last=pts.length?pts[pts.length-1].t:Date.now();
  pts.push({t:Math.max(Date.now(), last), eq:+s.equity});
  const nodes=[el('rect', {width:W, height:H, fill:'#1c1c1c'})];
  const t0=pts[0].t, t1=pts[pts.length-1].t, span=Math.max(t1-t0, 1000);
  const base=startPt?startPt.eq:pts[0].eq;
  let lo=Math.min(base, ...pts.map(p=>p.eq)), hi=Math.max(base, ...pts.map(p=>p.eq));
  if(hi-lo<1e-9){ lo-=1; hi+=1; }
  const ys=niceStep(hi-lo, 4); lo=Math.floor(lo/ys)*ys; hi=Math.ceil(hi/ys)*ys;
  let peak=-Infinity; const dd=pts.map(p=>{ peak=Math.max(peak, p.eq); return peak>0?(p.eq-peak)/peak*100:0; });
  const worst=Math.min(...dd), ddLo=worst<0?-niceStep(-worst, 2)*2:-1;
  const EB=T+EQH, DT=EB+GAP, DB=DT+DDH;
  const x=t=>L+(t-t0)/span*PW, y=v=>EB-(v-lo)/(hi-lo)*EQH, yd=v=>DT+v/ddLo*DDH;
  for(let v=lo; v<=hi+ys/2; v+=ys){ nodes.push(el('line', {x1:L, x2:W-R, y1:y(v), y2:y(v), stroke:'#333'}));
    nodes.push(txt(L-6, y(v)+4, v.toFixed(2), {'text-anchor':'end'})); }
  const st=timeStep(span/1000)*1000;
  for(let tk=Math.ceil(t0/st)*st; tk<=t1; tk+=st){ nodes.push(el('line', {x1:x(tk), x2:x(tk), y1:T, y2:DB, stroke:'#2a2a2a'}));
    const iso=new Date(tk).toISOString(); nodes.push(txt(x(tk), DB+16, st<60000?iso.substr(11,8):iso.substr(11,5), {'text-anchor':'middle'})); }
  nodes.push(txt(W-R, H-4, 'time (UTC)', {'text-anchor':'end'}));
  nodes.push(el('line', {x1:L, x2:W-R, y1:y(base), y2:y(base), stroke:'#6b7280', 'stroke-dasharray':'4 4'}));
  nodes.push(txt(W-R-4, y(base)-4, 'start '+base.toFixed(2), {'text-anchor':'end', 'font-size':10}));
  const first=gap?1:0;
  if(gap) nodes.push(el('line', {x1:x(gap.t0), y1:y(gap.e0), x2:x(gap.t1), y2:y(gap.e1), stroke:'#6b7280', 'stroke-width':2,
    'stroke-dasharray':'3 5', class:'equity-unknown'}, 'trades before this page opened (not in /status any more)'));
  let d='M'+x(pts[first].t).toFixed(1)+','+y(pts[first].eq).toFixed(1);
  for(const p of pts.slice(first+1)) d+='H'+x(p.t).toFixed(1)+'V'+y(p.eq).toFixed(1);
  nodes.push(el('path', {d:d, fill:'none', stroke:'#3b82f6', 'stroke-width':2, class:'equity-line'}));
  let at=gap?gap.e1:pts[0].eq;
  for(const p of evs){
    const px=x(p.t);
    if(p.kind==='entry'){
      const up=p.side.toUpperCase()==='LONG', py=y(at);
      const tri=up?[[px-5,py+9],[px+5,py+9],[px,py+1]]:[[px-5,py-9],[px+5,py-9],[px,py-1]];
      nodes.push(el('polygon', {points:tri.map(q=>q.join(',')).join(' '), fill:up?'#22c55e':'#ef4444', class:'entry-marker'},
        p.side+' entry '+new Date(p.t).toISOString().substr(11,8)));
    } else {
      nodes.push(el('circle', {cx:px, cy:y(p.eq), r:4, fill:p.pnl>=0?'#22c55e':'#ef4444', stroke:'#111', class:'exit-marker'},
        p.id+' exit '+p.what+' pnl '+p.pnl.toFixed(2)));
    }
    at=p.eq;
  }
  nodes.push(el('line', {x1:L, x2:W-R, y1:DT, y2:DT, stroke:'#6b7280'}));
  nodes.push(txt(L-6, DT+4, '0%', {'text-anchor':'end'})); nodes.push(txt(L-6, DB+4, ddLo.toFixed(2)+'%', {'text-anchor':'end'}));
  let a='M'+x(pts[0].t).toFixed(1)+','+DT+'V'+yd(dd[0]).toFixed(1);
  pts.slice(1).forEach((p,i)=>{ a+='H'+x(p.t).toFixed(1)+'V'+yd(dd[i+1]).toFixed(1); });
  nodes.push(el('path', {d:a+'V'+DT+'Z', fill:'#7f1d1d', stroke:'#ef4444', 'stroke-width':1, class:'drawdown'}));
  nodes.push(txt(W-R-4, DB-4, 'max drawdown '+worst.toFixed(2)+'%', {'text-anchor':'end', fill:worst<0?'#f87171':'#9ca3af'}));
  svg.replaceChildren(...nodes);
}
tick(); setInterval(tick, 1000);
</script></body></html>
"""
