// The layers of finetorch and what each may import (docs/architecture.md draws them):
//   utils  <-  binding  <-  tensor, runtime  <-  models, data, download, report  <-  distributed (models)
//          <-  training (models, distributed)  <-  experiment  <-  serve, doctor  <-  lib/index.ts, scripts/ (the CLI); export sits beside training
// `npm test` runs this through test/architecture.test.ts: any cycle or upward import fails it.
const layer = (name, from, forbidden) => ({
  name,
  severity: 'error',
  comment: `${from} must not import ${forbidden.join(', ')} (a lower layer never reaches up)`,
  from: { path: from },
  to: { path: forbidden.map((p) => `^${p}`) },
});

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'import cycles make the order of initialisation and of reading fragile', from: {}, to: { circular: true } },
    layer('utils-is-the-bottom', '^lib/utils/', ['lib/(?!utils/)', 'binding/', 'scripts/']),
    layer('binding-under-lib', '^binding/', ['lib/', 'scripts/']),
    layer('tensor-runtime-under-modules', '^lib/(tensor|runtime)\\.ts$', ['lib/(models|training|data|download|report|experiment|distributed)/', 'lib/index\\.ts', 'scripts/']),
    layer('models-under-training', '^lib/models/', ['lib/(training|data|download|report|experiment|distributed)/', 'lib/index\\.ts', 'scripts/']),
    layer('training-under-experiment', '^lib/training/', ['lib/(data|download|report|experiment)/', 'lib/index\\.ts', 'scripts/']),
    layer('data-under-experiment', '^lib/data/', ['lib/(models|training|download|report|experiment|distributed)/', 'lib/index\\.ts', 'scripts/']),
    layer('download-stands-alone', '^lib/download/', ['lib/(models|training|data|report|experiment|distributed)/', 'lib/(tensor|runtime)\\.ts', 'lib/index\\.ts', 'scripts/']),
    layer('report-writers-know-no-training', '^lib/report/', ['lib/(models|training|download|experiment|distributed)/', 'lib/(tensor|runtime)\\.ts', 'lib/index\\.ts', 'scripts/']),
    // c10d process groups and gradient averaging: on models, under the train step that uses them
    layer('distributed-under-training', '^lib/distributed/', ['lib/(training|data|download|report|experiment|export)/', 'lib/index\\.ts', 'scripts/']),
    layer('experiment-under-cli', '^lib/experiment/', ['lib/index\\.ts', 'scripts/']),
    layer('export-beside-training', '^lib/export/', ['lib/(training|download|report|experiment)/', 'lib/index\\.ts', 'scripts/']),
    // the doctor looks at every layer; only the CLI and lib/index.ts look at it
    layer('doctor-under-cli', '^lib/doctor/', ['lib/index\\.ts', 'scripts/']),
    { name: 'doctor-at-the-top', severity: 'error', comment: 'only lib/index.ts and scripts/ may import lib/doctor/', from: { path: '^lib/', pathNot: '^lib/(doctor/|index\\.ts$)' }, to: { path: '^lib/doctor/' } },
    // the prediction server sits on experiment/; only the CLI and lib/index.ts look at it
    layer('serve-under-cli', '^lib/serve/', ['lib/(doctor)/', 'lib/index\\.ts', 'scripts/']),
    { name: 'serve-at-the-top', severity: 'error', comment: 'only lib/index.ts and scripts/ may import lib/serve/', from: { path: '^lib/', pathNot: '^lib/(serve/|index\\.ts$)' }, to: { path: '^lib/serve/' } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|build|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
