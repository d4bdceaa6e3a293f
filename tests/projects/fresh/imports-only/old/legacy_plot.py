# The 2014 version of the plots, kept for reference (Python 2).
import urllib2
import cPickle
import numpy

print "loading", len(cPickle.load(open("old.pkl")))
