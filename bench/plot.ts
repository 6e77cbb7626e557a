/** Benchmark plots as SVG, through Vega-Lite (rendered headless, no canvas needed). */
import type { TopLevelSpec } from 'vega-lite';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // loaded here, not at the top: Vega takes ~1 s to import and only `bench --plot` draws (CLI start-up)
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

export interface Bar { group: string; series: string; value: number }

/** Grouped bars (e.g. decode tokens/s per weight format, one bar per thread count and peer). */
export function barSpec(title: string, yTitle: string, bars: Bar[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 360, height: 220, background: 'white',
    data: { values: bars },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      // groups and series in the order the bars come (not alphabetical), legend labels whole
      x: { field: 'group', type: 'nominal', title: null, sort: null },
      xOffset: { field: 'series', sort: null },
      y: { field: 'value', type: 'quantitative', title: yTitle },
      color: { field: 'series', type: 'nominal', title: null, sort: null, legend: { orient: 'bottom', columns: 2, labelLimit: 0 } },
    },
  };
}

export interface Point { x: number; y: number; series: string }

export function lineSpec(title: string, xTitle: string, yTitle: string, points: Point[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 360, height: 220, background: 'white',
    data: { values: points },
    mark: { type: 'line', point: true, tooltip: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xTitle, scale: { type: 'log', base: 2 } },
      y: { field: 'y', type: 'quantitative', title: yTitle, scale: { zero: true } },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom' } },
    },
  };
}

/** Several charts side by side in one SVG. */
export function concatSpec(specs: TopLevelSpec[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json', background: 'white', hconcat: specs as never,
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
  } as TopLevelSpec;
}
