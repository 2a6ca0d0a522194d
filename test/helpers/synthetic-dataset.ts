// The synthetic Caltech-style tree lives in lib/ (the demo uses it); tests import it from here.
export * from '../../lib/data/synthetic';
